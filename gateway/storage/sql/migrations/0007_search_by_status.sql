-- 0007: letter search by delivery status walks the deliveries in that status newest first. Without
-- this index a rare status (dead) was found by testing every letter newest first (measured on 1,000,000
-- letters: p50 357 ms, p99 1111 ms for one page of ?status=dead). A delivery's created_at is always its
-- message's accepted_at (both inserts set it), so this order is the search's order.
CREATE INDEX deliveries_status_created ON deliveries (status, created_at DESC, message_pk DESC);
