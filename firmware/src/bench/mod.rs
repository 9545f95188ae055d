//! A bench kiosk: `kiosk run` on a hardware profile with simulators serves the same simulator
//! control panel as `kiosk demo` (on loopback) and saves every printed ticket as a PNG, so a
//! technician can rehearse a store exactly as it will run, or support staff reproduce what a
//! customer reported, with the site config, credentials and CRM of the real store.
//!
//! The panel ([`panel`]) and the demo's network relays ([`switch`]) live here because both the
//! demo and a bench kiosk use them; only the demo has relays to cut.

pub mod panel;
pub mod switch;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::runtime::Running;

/// A running bench panel.
pub struct BenchPanel {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl BenchPanel {
    /// Stops serving.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Whether `kiosk run` serves a bench panel with this config: a profile with simulators and
/// `[bench].panel` on.
pub fn wanted(config: &Config) -> bool {
    config.hardware.has_simulators() && config.site.bench.panel
}

/// Serves the panel for `kiosk` on `[bench].panel_listen` (loopback).
pub async fn serve(kiosk: &Running, config: &Config) -> anyhow::Result<BenchPanel> {
    let addr = config.site.bench_panel_addr();
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for the bench panel (set [bench].panel_listen)")
    })?;
    serve_on(listener, kiosk, config)
}

/// Serves the panel for `kiosk` on `listener`.
pub fn serve_on(
    listener: TcpListener,
    kiosk: &Running,
    config: &Config,
) -> anyhow::Result<BenchPanel> {
    let addr = listener.local_addr()?;
    let cards = config
        .site
        .bench
        .cards
        .iter()
        .map(|c| {
            // Validated with the config: a bad UID never gets here.
            crate::config::parse_card_uid(&c.uid).map(|uid| panel::PanelCard {
                label: c.label.clone(),
                uid,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("[bench].cards: {e}"))?;
    let state = panel::PanelState {
        kiosks: vec![panel::PanelKiosk {
            number: 1,
            sims: kiosk.sims.clone(),
            last_ticket_qr: kiosk.last_ticket_qr.clone(),
            tickets_dir: crate::paths::DataDir::new(&config.site.kiosk.data_dir).tickets(),
            kiosk_url: format!("http://{}/", kiosk.ui_addr),
            staff_url: format!("http://{}", kiosk.staff_addr),
            store: kiosk.store.clone(),
            offline_switch: Arc::default(),
        }]
        .into(),
        network: None,
        lan: None,
        cards: cards.into(),
        kind: panel::PanelKind::Bench,
    };
    let stop = CancellationToken::new();
    let until = stop.clone();
    let task = tokio::spawn(async move {
        let app = panel::router(state);
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(until.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "bench panel stopped");
        }
    });
    tracing::info!(%addr, "bench kiosk: simulator control panel on loopback");
    Ok(BenchPanel { addr, stop, task })
}
