-- People who use the console, and API tokens of staff roles.

-- name: user_get
SELECT username, password_hash, role::text AS role, agency, disabled FROM users WHERE username = $1;

-- name: user_insert
INSERT INTO users (username, password_hash, role, agency, created_at, updated_at)
VALUES ($1, $2, $3::user_role, $4, $5, $5)
ON CONFLICT (username) DO NOTHING
RETURNING username;

-- name: user_set_password
UPDATE users SET password_hash = $2, updated_at = $3 WHERE username = $1 RETURNING username;

-- name: user_set_disabled
UPDATE users SET disabled = $2, updated_at = $3 WHERE username = $1 RETURNING username;

-- name: users_list
SELECT username, role::text AS role, agency, disabled, created_at, updated_at FROM users ORDER BY username;

-- name: api_token_insert
INSERT INTO api_tokens (token_sha256, username, label, created_at) VALUES ($1, $2, $3, $4);

-- name: api_token_user
SELECT u.username, u.role::text AS role, u.agency, u.disabled
FROM api_tokens t JOIN users u ON u.username = t.username
WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL;
