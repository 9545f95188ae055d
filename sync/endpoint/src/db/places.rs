//! Where the stores are (schema version 12: `stores.region`, `latitude`, `longitude`) and what
//! each did over a period, for the console's map (`crate::map`): regions coloured by a figure,
//! drilled down to their stores.
//!
//! Data flow: admin API / `kiosk demo` → `stores` → **places** → map. A store's period figures
//! are the dashboard's own rows ([`WindowRows`], daily roll-ups included for whole days), so the
//! map and the store dashboard never disagree; a region's figures are its stores' rows merged,
//! so its median wait is the median of all its turns, not a median of medians.

use serde::{Deserialize, Serialize};

use super::dashboard::{DashboardQuery, WindowRows, start_of_day_ms};
use super::exec::{Exec, args};
use super::model::{DbError, DbResult};

pub use crate::input::check_region;

/// Where a store is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StorePlace {
    /// Store id.
    pub id: String,
    /// Store name.
    pub name: String,
    /// IANA time zone, when set.
    pub timezone: Option<String>,
    /// ISO 3166-2 region code (`ES-MD`), when set.
    pub region: Option<String>,
    /// WGS 84 latitude, degrees, when set.
    pub latitude: Option<f64>,
    /// WGS 84 longitude, degrees, when set.
    pub longitude: Option<f64>,
}

/// A store's place as the operator sets it (`PUT /v1/admin/stores/{id}/location`): a region,
/// and coordinates (both or neither); optionally a new name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceUpdate {
    /// New name; absent or `null` keeps it.
    #[serde(default, deserialize_with = "crate::input::opt_name")]
    #[schemars(with = "Option<crate::input::Name>")]
    pub name: Option<String>,
    /// ISO 3166-2 region code (`ES-MD`); `null` clears it.
    #[schemars(regex(pattern = r"^[A-Z]{2}-[A-Z0-9]{1,9}$"))]
    pub region: Option<String>,
    /// WGS 84 latitude, -90 to 90; `null` with `longitude` clears the coordinates.
    #[schemars(range(min = -90.0, max = 90.0))]
    pub latitude: Option<f64>,
    /// WGS 84 longitude, -180 to 180.
    #[schemars(range(min = -180.0, max = 180.0))]
    pub longitude: Option<f64>,
}

impl PlaceUpdate {
    /// The first rule the update breaks, naming its field.
    pub fn check(&self) -> Result<(), String> {
        if let Some(r) = &self.region {
            check_region(r).map_err(|e| format!("region: {e}"))?;
        }
        match (self.latitude, self.longitude) {
            (None, None) => Ok(()),
            (Some(lat), Some(lon)) => {
                if !(-90.0..=90.0).contains(&lat) {
                    Err(format!("latitude: {lat} is not between -90 and 90"))
                } else if !(-180.0..=180.0).contains(&lon) {
                    Err(format!("longitude: {lon} is not between -180 and 180"))
                } else {
                    Ok(())
                }
            }
            _ => Err("latitude, longitude: give both or neither".into()),
        }
    }
}

/// Every store with its place, by id.
pub(crate) async fn store_places(e: &impl Exec) -> DbResult<Vec<StorePlace>> {
    e.query(
        "SELECT s.id, s.name, z.timezone, s.region, s.latitude, s.longitude FROM stores s
         LEFT JOIN store_timezones z ON z.store_id = s.id ORDER BY s.id",
        &[],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(StorePlace {
            id: r.get(0)?,
            name: r.get(1)?,
            timezone: r.get(2)?,
            region: r.get(3)?,
            latitude: r.get(4)?,
            longitude: r.get(5)?,
        })
    })
    .collect()
}

/// Sets store `store_id`'s place (and its name, when given); moved to another region, the
/// store's feed gets the campaigns aimed at its new region and the withdrawal of those aimed at
/// its old one. `NotFound` when there is no such store. In one transaction. The caller has
/// checked the update ([`PlaceUpdate::check`]).
pub(crate) async fn set_store_place(
    e: &impl Exec,
    store_id: String,
    place: PlaceUpdate,
) -> DbResult<()> {
    let Some(before) = e
        .query_opt("SELECT region FROM stores WHERE id = ?1", args![&store_id])
        .await?
    else {
        return Err(DbError::NotFound(format!("store {store_id:?}")));
    };
    let region_before: Option<String> = before.get(0)?;
    let moved = region_before != place.region;
    e.execute(
        "UPDATE stores SET region = ?2, latitude = ?3, longitude = ?4 WHERE id = ?1",
        args![
            &store_id,
            place.region.clone(),
            place.latitude,
            place.longitude
        ],
    )
    .await?;
    if let Some(name) = place.name {
        e.execute(
            "UPDATE stores SET name = ?2 WHERE id = ?1",
            args![&store_id, name],
        )
        .await?;
    }
    // Campaigns aimed at regions follow the store into (or out of) its region: the store's feed
    // gets the campaigns of its new region and the withdrawal of those of its old one (its
    // kiosks drop them at their next poll); no other store's feed changes, nor any feed for a
    // new name or new coordinates.
    if !moved {
        return Ok(());
    }
    let within = |region: &Option<String>, regions: &[String]| {
        region.as_ref().is_some_and(|r| regions.contains(r))
    };
    for campaign in super::shared::campaigns(e).await? {
        if campaign.regions.is_empty() || campaign.stores.contains(&store_id) {
            continue;
        }
        let was = within(&region_before, &campaign.regions);
        let is = within(&place.region, &campaign.regions);
        if was != is {
            super::shared::feed_campaign_to_store(e, &campaign, &store_id, is).await?;
        }
    }
    Ok(())
}

/// Every store's place and its figures' rows over the last `days` local days (today included),
/// each in its own time zone, up to `now_ms`.
pub(crate) async fn store_periods(
    e: &impl Exec,
    days: u32,
    now_ms: i64,
) -> DbResult<Vec<(StorePlace, WindowRows)>> {
    const DAY_MS: i64 = 24 * 3600 * 1000;
    let mut out = Vec::new();
    for place in store_places(e).await? {
        let tz = place.timezone.as_deref();
        let back = now_ms - i64::from(days.saturating_sub(1)) * DAY_MS;
        let since = start_of_day_ms(tz, back);
        let q = DashboardQuery::new(place.id.clone(), since, now_ms);
        let rows = super::rollup::window_with_rollups(e, &q, tz).await?;
        out.push((place, rows));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_codes_are_iso_3166_2_and_places_need_both_coordinates() {
        assert!(check_region("ES-MD").is_ok());
        assert!(check_region("ES-CN").is_ok());
        assert!(check_region("FR-75").is_ok());
        for bad in [
            "es-md", "Madrid", "ES", "ES-", "ESP-MD", "ES-M D", "ES-MD-X",
        ] {
            assert!(check_region(bad).is_err(), "{bad}");
        }
        let ok = PlaceUpdate {
            name: None,
            region: Some("ES-AN".into()),
            latitude: Some(37.39),
            longitude: Some(-5.99),
        };
        assert!(ok.check().is_ok());
        let half = PlaceUpdate {
            latitude: Some(37.39),
            longitude: None,
            ..ok.clone()
        };
        assert!(half.check().unwrap_err().contains("both"));
        let far = PlaceUpdate {
            latitude: Some(91.0),
            ..ok.clone()
        };
        assert!(far.check().unwrap_err().starts_with("latitude"));
        let bad = PlaceUpdate {
            region: Some("Andalucía".into()),
            ..ok
        };
        assert!(bad.check().unwrap_err().starts_with("region"));
    }
}
