-- crm-endpoint schema (issue 20, safe updates; migration 0011, sqlite): signed firmware releases
-- (metadata and signature; the package in chunks of 512 KiB, base64, so a resumed download reads
-- only the chunks it needs), rollouts (a release to a store or to all, for a percentage of kiosks,
-- halted after max_failures rollbacks), per-kiosk pins, and what each kiosk last said it runs.
CREATE TABLE releases (
    version TEXT NOT NULL, arch TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    signature TEXT NOT NULL, chunk_bytes INTEGER NOT NULL, uploaded_ms INTEGER NOT NULL,
    PRIMARY KEY (version, arch));
CREATE TABLE release_chunks (
    version TEXT NOT NULL, arch TEXT NOT NULL, idx INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (version, arch, idx));
CREATE TABLE rollouts (
    version TEXT PRIMARY KEY, store_id TEXT, percent INTEGER NOT NULL, max_failures INTEGER NOT NULL,
    halted_ms INTEGER, halted_reason TEXT, created_ms INTEGER NOT NULL);
CREATE TABLE kiosk_release_pins (kiosk_id TEXT PRIMARY KEY, version TEXT NOT NULL, pinned_ms INTEGER NOT NULL);
CREATE TABLE kiosk_firmware (
    kiosk_id TEXT PRIMARY KEY, version TEXT NOT NULL, arch TEXT NOT NULL, reported_ms INTEGER NOT NULL);
CREATE INDEX events_firmware_updated ON events(type, kiosk_id) WHERE type = 'firmware_updated';
