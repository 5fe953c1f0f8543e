-- View snapshots record their total package size, as repository snapshots do, so
-- pages list it without summing 100,000 rows per snapshot.

ALTER TABLE view_snapshots ADD COLUMN total_size BIGINT NOT NULL DEFAULT 0;
UPDATE view_snapshots SET total_size = (
    SELECT CAST(COALESCE(SUM(p.size_package), 0) AS BIGINT)
      FROM view_snapshot_packages vp JOIN packages p ON p.id = vp.package_id
     WHERE vp.view_snapshot_id = view_snapshots.id);
