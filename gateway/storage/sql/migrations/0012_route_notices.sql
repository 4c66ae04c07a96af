-- Route-change notices: when an agency's route changes, the gateway tells the agency over its old route
-- and over its new one (a redirected route is how letters get lost or stolen). A notice to the old
-- route is a delivery pinned to that route: pinned_route holds the route (kind and settings) the
-- dispatcher uses instead of the recipient's route in force. NULL for every ordinary delivery.
ALTER TABLE deliveries ADD COLUMN pinned_route jsonb;
