//! Firmware releases at the CRM (issue 20, safe updates): signed packages stored in chunks,
//! rollouts to a store or the whole fleet for a percentage of kiosks (canary, by kiosk id),
//! per-kiosk pins, and the automatic halt of a rollout whose kiosks roll back.
//!
//! Data flow: release manager → admin API (`PUT /v1/admin/releases/…`) → **here** → a kiosk's
//! `GET /v1/kiosks/{id}/release` (its assignment) and `…/releases/{version}/{arch}` (the
//! package) → the kiosk's `firmware_updated` events → the failure count that halts a rollout.
//! The CRM never signs: kiosks verify every package against the key pinned at provisioning.

use kiosk_protocol::release::{ReleaseManifest, SignedPin, SignedRelease};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::exec::{Exec, args};
use super::model::{DbError, DbResult};

/// Bytes of a package per stored chunk (base64 in a TEXT row, both databases).
pub const CHUNK_BYTES: usize = 512 * 1024;

/// A release as uploaded: the manifest and signature, and the package.
#[derive(Debug, Clone)]
pub struct NewRelease {
    /// Manifest and signature (the manifest computed from the uploaded bytes).
    pub signed: SignedRelease,
    /// The package.
    pub package: Vec<u8>,
    /// When (Unix ms).
    pub uploaded_ms: i64,
}

/// A rollout: a release offered to a store (or every store) for a share of its kiosks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Rollout {
    /// The release's version.
    pub version: String,
    /// Only this store's kiosks (`None`: the whole fleet).
    #[serde(default)]
    pub store_id: Option<String>,
    /// Share of the kiosks in scope that get it, 0 to 100 (canary: 5, then 25, then 100); the
    /// kiosks of a smaller share stay in a larger one.
    pub percent: u8,
    /// Kiosks that rolled back or refused it before the rollout halts by itself.
    pub max_failures: u32,
    /// When it halted (Unix ms), if it did.
    #[serde(default)]
    pub halted_ms: Option<i64>,
    /// Why it halted.
    #[serde(default)]
    pub halted_reason: Option<String>,
}

/// A stored release, for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseSummary {
    /// Version.
    pub version: String,
    /// Architecture.
    pub arch: String,
    /// Package size in bytes.
    pub size: u64,
    /// Package SHA-256.
    pub sha256: String,
    /// When it was uploaded (Unix ms).
    pub uploaded_ms: i64,
    /// Its rollout, if any.
    pub rollout: Option<Rollout>,
    /// Kiosks that reported installing it and keeping it.
    pub installed: u64,
    /// Kiosks that reported rolling it back or refusing it.
    pub failures: u64,
    /// Where its rollout stands, kiosk by kiosk (the fleet dashboard's rollout view).
    pub kiosks: RolloutKiosks,
}

/// A release's rollout in kiosks. A kiosk counts once in each figure that applies to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RolloutKiosks {
    /// Offered it: pinned to it, or inside its rollout's store and share and pinned to nothing
    /// else (a halted rollout keeps the kiosks it had).
    pub assigned: u64,
    /// Hold it downloaded and verified, waiting for a quiet moment to install.
    pub downloaded: u64,
    /// Reported installing it and keeping it.
    pub installed: u64,
    /// Run it now and were heard from in the last [`HEALTHY_WITHIN_MS`].
    pub healthy: u64,
    /// Reported rolling it back (it failed its trial).
    pub rolled_back: u64,
    /// Reported refusing it (signature, package, downgrade, no rollback package).
    pub refused: u64,
    /// Pinned to it.
    pub pinned: u64,
}

/// A kiosk running a release counts as healthy when heard from this recently (the offline
/// alert's default).
pub const HEALTHY_WITHIN_MS: i64 = 15 * 60_000;

/// The canary bucket of a kiosk, 0 to 99: the same for every release, so a kiosk in a 5 %
/// rollout is in the 25 % one too.
pub fn canary_bucket(kiosk_id: &str) -> u8 {
    let digest = Sha256::digest(format!("kiosk-canary\n{kiosk_id}").as_bytes());
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    u8::try_from(u64::from_be_bytes(first) % 100).unwrap_or(0)
}

/// Whether a rollout covers a kiosk of `store_id` with `kiosk_id`.
pub fn covers(rollout: &Rollout, kiosk_id: &str, store_id: &str) -> bool {
    rollout.halted_ms.is_none()
        && rollout.store_id.as_deref().is_none_or(|s| s == store_id)
        && canary_bucket(kiosk_id) < rollout.percent
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// See [`super::database::Database::put_release`]; in a transaction. Releases are immutable:
/// the same version and arch again with other bytes is refused.
pub(crate) async fn put_release(e: &impl Exec, release: NewRelease) -> DbResult<bool> {
    use base64::Engine as _;
    let m = &release.signed.manifest;
    if let Some(row) = e
        .query_opt(
            "SELECT sha256 FROM releases WHERE version = ?1 AND arch = ?2",
            args![&m.version, &m.arch],
        )
        .await?
    {
        let sha: String = row.get(0)?;
        if sha == m.sha256 {
            return Ok(false);
        }
        return Err(DbError::Refused(format!(
            "release {} ({}) is already stored with another package; releases never change: build it with a new version",
            m.version, m.arch
        )));
    }
    e.execute(
        "INSERT INTO releases (version, arch, sha256, size, signature, chunk_bytes, uploaded_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        args![
            &m.version,
            &m.arch,
            &m.sha256,
            i64::try_from(m.size).unwrap_or(i64::MAX),
            &release.signed.signature,
            i64::try_from(CHUNK_BYTES).unwrap_or(i64::MAX),
            release.uploaded_ms
        ],
    )
    .await?;
    for (idx, chunk) in release.package.chunks(CHUNK_BYTES).enumerate() {
        e.execute(
            "INSERT INTO release_chunks (version, arch, idx, data) VALUES (?1, ?2, ?3, ?4)",
            args![
                &m.version,
                &m.arch,
                i64::try_from(idx).unwrap_or(i64::MAX),
                base64::engine::general_purpose::STANDARD.encode(chunk)
            ],
        )
        .await?;
    }
    Ok(true)
}

/// See [`super::database::Database::release`].
pub(crate) async fn release(
    e: &impl Exec,
    version: String,
    arch: String,
) -> DbResult<Option<SignedRelease>> {
    let Some(row) = e
        .query_opt(
            "SELECT sha256, size, signature FROM releases WHERE version = ?1 AND arch = ?2",
            args![&version, &arch],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(SignedRelease {
        manifest: ReleaseManifest {
            version,
            arch,
            sha256: row.get(0)?,
            size: u64_of(row.get(1)?),
        },
        signature: row.get(2)?,
    }))
}

/// See [`super::database::Database::release_chunk`]: the bytes of chunk `idx`.
pub(crate) async fn release_chunk(
    e: &impl Exec,
    version: String,
    arch: String,
    idx: u64,
) -> DbResult<Option<Vec<u8>>> {
    use base64::Engine as _;
    let Some(row) = e
        .query_opt(
            "SELECT data FROM release_chunks WHERE version = ?1 AND arch = ?2 AND idx = ?3",
            args![version, arch, i64::try_from(idx).unwrap_or(i64::MAX)],
        )
        .await?
    else {
        return Ok(None);
    };
    let data: String = row.get(0)?;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map(Some)
        .map_err(|_| DbError::Corrupt("a release chunk is not base64".to_owned()))
}

async fn rollouts(e: &impl Exec, only: Option<&str>) -> DbResult<Vec<Rollout>> {
    const SELECT: &str =
        "SELECT version, store_id, percent, max_failures, halted_ms, halted_reason FROM rollouts";
    let rows = match only {
        Some(v) => {
            e.query(&format!("{SELECT} WHERE version = ?1"), args![v])
                .await?
        }
        None => {
            e.query(
                &format!("{SELECT} ORDER BY created_ms DESC, version DESC"),
                &[],
            )
            .await?
        }
    };
    rows.iter()
        .map(|r| {
            Ok(Rollout {
                version: r.get(0)?,
                store_id: r.get(1)?,
                percent: u8::try_from(r.get::<i64>(2)?).unwrap_or(0),
                max_failures: u32::try_from(r.get::<i64>(3)?).unwrap_or(0),
                halted_ms: r.get(4)?,
                halted_reason: r.get(5)?,
            })
        })
        .collect()
}

/// Kiosks whose latest `firmware_updated` event about `version` says `results`.
async fn kiosks_reporting(e: &impl Exec, version: &str, results: &str) -> DbResult<u64> {
    let d = e.dialect();
    let sql = format!(
        "SELECT COUNT(DISTINCT kiosk_id) FROM events WHERE type = 'firmware_updated'
         AND {} = ?1 AND {} IN ({results})",
        d.envelope_field("payload.version"),
        d.envelope_field("payload.result"),
    );
    let n: i64 = e.query_one(&sql, args![version]).await?.get(0)?;
    Ok(u64_of(n))
}

async fn failures(e: &impl Exec, version: &str) -> DbResult<u64> {
    kiosks_reporting(e, version, "'rolled_back', 'refused'").await
}

/// Every kiosk with its store, when it was last heard from, what it runs and holds downloaded,
/// and its pin.
struct FleetKiosk {
    id: String,
    store_id: String,
    last_seen_ms: Option<i64>,
    running: Option<String>,
    downloaded: Option<String>,
    pinned: Option<String>,
}

async fn fleet_kiosks(e: &impl Exec) -> DbResult<Vec<FleetKiosk>> {
    let rows = e
        .query(
            "SELECT k.id, k.store_id, k.last_seen_ms, f.version, f.downloaded, p.version
             FROM kiosks k
             LEFT JOIN kiosk_firmware f ON f.kiosk_id = k.id
             LEFT JOIN kiosk_release_pins p ON p.kiosk_id = k.id",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(FleetKiosk {
                id: r.get(0)?,
                store_id: r.get(1)?,
                last_seen_ms: r.get(2)?,
                running: r.get(3)?,
                downloaded: r.get(4)?,
                pinned: r.get(5)?,
            })
        })
        .collect()
}

/// A release's figures over the fleet (pure, but for the reported results given).
fn rollout_kiosks(
    version: &str,
    rollout: Option<&Rollout>,
    fleet: &[FleetKiosk],
    now_ms: i64,
) -> RolloutKiosks {
    let is = |v: &Option<String>| v.as_deref() == Some(version);
    let mut out = RolloutKiosks::default();
    for k in fleet {
        let in_share = rollout.is_some_and(|r| {
            r.store_id.as_deref().is_none_or(|s| s == k.store_id)
                && canary_bucket(&k.id) < r.percent
        });
        if is(&k.pinned) || (k.pinned.is_none() && in_share) {
            out.assigned += 1;
        }
        if is(&k.pinned) {
            out.pinned += 1;
        }
        if is(&k.downloaded) && !is(&k.running) {
            out.downloaded += 1;
        }
        if is(&k.running)
            && k.last_seen_ms
                .is_some_and(|t| now_ms - t <= HEALTHY_WITHIN_MS)
        {
            out.healthy += 1;
        }
    }
    out
}

/// See [`super::database::Database::releases`].
pub(crate) async fn releases(e: &impl Exec) -> DbResult<Vec<ReleaseSummary>> {
    let fleet = fleet_kiosks(e).await?;
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis()),
    )
    .unwrap_or(i64::MAX);
    let rows = e
        .query(
            "SELECT version, arch, size, sha256, uploaded_ms FROM releases
             ORDER BY uploaded_ms DESC, version DESC, arch",
            &[],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let version: String = r.get(0)?;
        let rollout = rollouts(e, Some(&version)).await?.into_iter().next();
        let installed = kiosks_reporting(e, &version, "'installed'").await?;
        let kiosks = RolloutKiosks {
            installed,
            rolled_back: kiosks_reporting(e, &version, "'rolled_back'").await?,
            refused: kiosks_reporting(e, &version, "'refused'").await?,
            ..rollout_kiosks(&version, rollout.as_ref(), &fleet, now_ms)
        };
        out.push(ReleaseSummary {
            rollout,
            installed,
            kiosks,
            failures: failures(e, &version).await?,
            arch: r.get(1)?,
            size: u64_of(r.get(2)?),
            sha256: r.get(3)?,
            uploaded_ms: r.get(4)?,
            version,
        });
    }
    Ok(out)
}

/// See [`super::database::Database::set_rollout`]: starts (or changes, and un-halts) a rollout.
pub(crate) async fn set_rollout(e: &impl Exec, rollout: Rollout, now_ms: i64) -> DbResult<()> {
    if rollout.percent > 100 {
        return Err(DbError::Refused(format!(
            "percent {}: 0 to 100",
            rollout.percent
        )));
    }
    let known = e
        .query_opt(
            "SELECT 1 FROM releases WHERE version = ?1",
            args![&rollout.version],
        )
        .await?;
    if known.is_none() {
        return Err(DbError::NotFound(format!(
            "release {} (upload it first: PUT /v1/admin/releases/{}/ARCH)",
            rollout.version, rollout.version
        )));
    }
    if let Some(store) = &rollout.store_id
        && e.query_opt("SELECT 1 FROM stores WHERE id = ?1", args![store])
            .await?
            .is_none()
    {
        return Err(DbError::NotFound(format!("store {store}")));
    }
    e.execute(
        "INSERT INTO rollouts (version, store_id, percent, max_failures, halted_ms, halted_reason, created_ms)
         VALUES (?1, ?2, ?3, ?4, NULL, NULL, ?5)
         ON CONFLICT (version) DO UPDATE SET store_id = excluded.store_id,
             percent = excluded.percent, max_failures = excluded.max_failures,
             halted_ms = NULL, halted_reason = NULL",
        args![
            &rollout.version,
            &rollout.store_id,
            i64::from(rollout.percent),
            i64::from(rollout.max_failures),
            now_ms
        ],
    )
    .await?;
    Ok(())
}

/// A kiosk's pin: the release, and the operator's signature of the decision (what lets the
/// kiosk install it when it is older than what it runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The release.
    pub version: String,
    /// `crm-endpoint release-sign-pin`'s output, for this kiosk and this version.
    pub signed: Option<SignedPin>,
}

/// What a kiosk is told to run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assigned {
    /// The release (none: keep what runs).
    pub release: Option<SignedRelease>,
    /// The operator's signed pin to it, when the kiosk is pinned with one.
    pub pin: Option<SignedPin>,
    /// The kiosk is pinned to it.
    pub pinned: bool,
}

/// See [`super::database::Database::pin_kiosk`].
pub(crate) async fn pin_kiosk(
    e: &impl Exec,
    kiosk_id: String,
    pin: Option<Pin>,
    now_ms: i64,
) -> DbResult<()> {
    if e.query_opt("SELECT 1 FROM kiosks WHERE id = ?1", args![&kiosk_id])
        .await?
        .is_none()
    {
        return Err(DbError::NotFound(format!("kiosk {kiosk_id}")));
    }
    match pin {
        None => {
            e.execute(
                "DELETE FROM kiosk_release_pins WHERE kiosk_id = ?1",
                args![kiosk_id],
            )
            .await?;
        }
        Some(Pin { version: v, signed }) => {
            if e.query_opt("SELECT 1 FROM releases WHERE version = ?1", args![&v])
                .await?
                .is_none()
            {
                return Err(DbError::NotFound(format!("release {v}")));
            }
            // The CRM holds no key to verify it with (the kiosk does), but a pin for another
            // kiosk or release is a mistake to refuse now rather than at the kiosk.
            let signed = match signed {
                Some(p) if p.manifest.kiosk_id != kiosk_id || p.manifest.version != v => {
                    return Err(DbError::Refused(format!(
                        "the signed pin is for kiosk {} and release {}, not kiosk {kiosk_id} and release {v}",
                        p.manifest.kiosk_id, p.manifest.version
                    )));
                }
                Some(p) => Some(serde_json::to_string(&p).map_err(|e| {
                    DbError::Corrupt(format!("a signed pin does not serialise: {e}"))
                })?),
                None => None,
            };
            e.execute(
                "INSERT INTO kiosk_release_pins (kiosk_id, version, pinned_ms, signed_pin) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kiosk_id) DO UPDATE SET version = excluded.version,
                     pinned_ms = excluded.pinned_ms, signed_pin = excluded.signed_pin",
                args![kiosk_id, v, now_ms, signed],
            )
            .await?;
        }
    }
    Ok(())
}

/// What a kiosk asks: its running version and package architecture.
#[derive(Debug, Clone)]
pub struct ReleaseAsk {
    /// The kiosk.
    pub kiosk_id: String,
    /// Its store.
    pub store_id: String,
    /// Its package architecture.
    pub arch: String,
    /// The version it runs.
    pub running: String,
    /// The release it holds downloaded and verified, waiting for a quiet moment.
    pub downloaded: Option<String>,
    /// Now (Unix ms).
    pub now_ms: i64,
}

/// See [`super::database::Database::release_for_kiosk`]; in a transaction: records what the
/// kiosk runs, halts the rollouts whose failures reached their threshold, and answers the
/// release this kiosk should run (its pin first, else the newest rollout covering it).
pub(crate) async fn release_for_kiosk(e: &impl Exec, ask: ReleaseAsk) -> DbResult<Assigned> {
    e.execute(
        "INSERT INTO kiosk_firmware (kiosk_id, version, arch, reported_ms, downloaded)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (kiosk_id) DO UPDATE SET version = excluded.version, arch = excluded.arch,
             reported_ms = excluded.reported_ms, downloaded = excluded.downloaded",
        args![
            &ask.kiosk_id,
            &ask.running,
            &ask.arch,
            ask.now_ms,
            &ask.downloaded
        ],
    )
    .await?;
    if let Some(pin) = e
        .query_opt(
            "SELECT version, signed_pin FROM kiosk_release_pins WHERE kiosk_id = ?1",
            args![&ask.kiosk_id],
        )
        .await?
    {
        let version: String = pin.get(0)?;
        let signed: Option<String> = pin.get(1)?;
        return Ok(Assigned {
            release: release(e, version, ask.arch).await?,
            pin: signed.and_then(|t| serde_json::from_str(&t).ok()),
            pinned: true,
        });
    }
    for rollout in rollouts(e, None).await? {
        if rollout.halted_ms.is_some() {
            continue;
        }
        let failed = failures(e, &rollout.version).await?;
        if failed >= u64::from(rollout.max_failures.max(1)) {
            let reason = format!(
                "{failed} kiosks rolled back or refused it (threshold {})",
                rollout.max_failures
            );
            tracing::warn!(version = rollout.version, failed, "rollout halted");
            e.execute(
                "UPDATE rollouts SET halted_ms = ?2, halted_reason = ?3 WHERE version = ?1 AND halted_ms IS NULL",
                args![&rollout.version, ask.now_ms, reason],
            )
            .await?;
            continue;
        }
        if covers(&rollout, &ask.kiosk_id, &ask.store_id)
            && let Some(found) = release(e, rollout.version.clone(), ask.arch.clone()).await?
        {
            return Ok(Assigned {
                release: Some(found),
                pin: None,
                pinned: false,
            });
        }
    }
    Ok(Assigned::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_buckets_spread_kiosks_evenly_and_a_small_share_stays_in_a_larger_one() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("k-{i:012x}")).collect();
        let share = |p: u8| ids.iter().filter(|k| canary_bucket(k) < p).count();
        let five = share(5);
        assert!(
            (400..600).contains(&five),
            "5 % of 10,000 kiosks was {five}"
        );
        let rollout = |percent| Rollout {
            version: "0.2.0".into(),
            store_id: None,
            percent,
            max_failures: 3,
            halted_ms: None,
            halted_reason: None,
        };
        for k in &ids {
            if covers(&rollout(5), k, "s") {
                assert!(covers(&rollout(25), k, "s"), "{k} left the canary at 25 %");
            }
            assert!(covers(&rollout(100), k, "s"));
            assert!(!covers(&rollout(0), k, "s"));
        }
        assert_eq!(canary_bucket("k-1"), canary_bucket("k-1"));
    }

    #[test]
    fn a_halted_or_other_store_rollout_covers_nobody() {
        let mut r = Rollout {
            version: "0.2.0".into(),
            store_id: Some("north".into()),
            percent: 100,
            max_failures: 1,
            halted_ms: None,
            halted_reason: None,
        };
        assert!(covers(&r, "k-1", "north"));
        assert!(!covers(&r, "k-1", "south"));
        r.halted_ms = Some(1);
        assert!(!covers(&r, "k-1", "north"));
    }
}
