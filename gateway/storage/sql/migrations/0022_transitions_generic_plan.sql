-- apply_delivery_transitions (every delivery outcome's group commit) planned once per connection, as
-- insert_messages is since 0018. PL/pgSQL plans each of its statements through the plan cache, which
-- kept choosing custom plans for these (the arrays' lengths move their estimates), so every call planned
-- its eight statements again: pg_stat_statements under bench/e2e.py showed ~0.4 ms of planning per call,
-- most of it the UPDATE of deliveries with its audit, receipt and backoff CTEs. The generic plans use
-- the same indexes (the deliveries' and destinations' keys).
ALTER FUNCTION apply_delivery_transitions(delivery_transition[], new_message[], new_delivery[])
    SET plan_cache_mode = force_generic_plan;
