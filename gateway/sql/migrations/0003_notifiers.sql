-- 0003: business answers (notifiers) correlated to letters, and withdrawal.
-- A notifier's kind and registry number are kept as columns so a letter's
-- business state per recipient (received, accepted with its registry number,
-- rejected, invalid) is derived by one indexed query, never stored twice.

ALTER TABLE messages ADD COLUMN notifier_kind text;
ALTER TABLE messages ADD COLUMN registry_number text;
CREATE INDEX messages_notifier_ref ON messages (ref_to_message_id) WHERE message_type = 'notifier';
CREATE INDEX messages_sender_accepted ON messages (sender, accepted_at DESC);
