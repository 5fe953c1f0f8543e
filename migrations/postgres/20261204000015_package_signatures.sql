-- Each package's header signature, as read from the package itself: the issuer's key
-- ID (16 lower-case hex digits) and the algorithm (RSA, EdDSA, ...). sig_algorithm is
-- 'none' for an unsigned package; both are NULL while the package has not been read
-- for it (rows written before this column existed).

ALTER TABLE packages ADD COLUMN sig_key_id TEXT;
ALTER TABLE packages ADD COLUMN sig_algorithm TEXT;
