-- 0003: business answers (notifiers) correlated to letters, and withdrawal.
-- A notifier's kind and registry number are kept as columns so a letter's
-- business state per recipient (received, accepted with its registry number,
-- rejected, invalid) is derived by one indexed query, never stored twice
-- (messages_ref_to and messages_sender_accepted from 0002 serve the queries).

ALTER TABLE messages ADD COLUMN notifier_kind text;
ALTER TABLE messages ADD COLUMN registry_number text;
