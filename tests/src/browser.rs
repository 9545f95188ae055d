//! A real browser for the end-to-end tests: headless Chromium (Debian's `chromium`) driven over
//! WebDriver by Debian's `chromedriver`, started on a free loopback port for each [`Browser`].
//! The tests open the kiosk screen, the counter page, the lobby display and the CRM dashboard in
//! it, touch them as a person does, and keep screenshots as artifacts under
//! `<target dir>/artifacts/`.
//!
//! Every wait polls with a deadline and fails naming what it waited for and what it saw last; a
//! missing browser or driver fails at once naming the Debian package to install. Dropping a
//! [`Browser`] kills chromedriver's whole process group, so a failed test leaves no Chromium
//! behind.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::error::{CmdError, NewSessionError};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// How long the waits of the tests allow by default: generous, since they only bound a broken
/// journey (a healthy screen answers in milliseconds), and CI shares two cores.
pub const WAIT: Duration = Duration::from_secs(30);

/// How often a wait polls the page.
const POLL: Duration = Duration::from_millis(50);

/// How long chromedriver may take to listen, and Chromium to open a session.
const STARTUP: Duration = Duration::from_secs(60);

/// Where Debian installs Chromium's real binary (`/usr/bin/chromium` is a wrapper script that
/// adds flags from `/etc/chromium.d`, which the tests set themselves).
const CHROMIUM_PATHS: &[&str] = &["/usr/lib/chromium/chromium", "/usr/bin/chromium"];

/// Where Debian's `chromium-driver` installs chromedriver.
const CHROMEDRIVER_PATH: &str = "/usr/bin/chromedriver";

/// What went wrong driving the browser.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// Chromium or chromedriver is not installed.
    #[error(
        "{what} not found (looked at {looked}): install the Debian package `{package}` (scripts/test installs scripts/apt-packages.txt) or point {env} at it"
    )]
    Missing {
        /// chromium or chromedriver.
        what: &'static str,
        /// The paths tried.
        looked: String,
        /// The Debian package that provides it.
        package: &'static str,
        /// The environment variable that overrides the path.
        env: &'static str,
    },
    /// chromedriver could not be run.
    #[error("cannot run chromedriver at {path}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// chromedriver exited or never listened.
    #[error("chromedriver did not start: {reason}; its log:\n{log}")]
    DriverNotReady {
        /// What was seen.
        reason: String,
        /// The end of chromedriver's output.
        log: String,
    },
    /// Chromium refused or failed to open a session.
    #[error("chromium did not open a WebDriver session; chromedriver's log:\n{log}")]
    Session {
        /// The end of chromedriver's output.
        log: String,
        /// Why.
        #[source]
        source: NewSessionError,
    },
    /// A WebDriver command failed.
    #[error("browser command failed: {what}")]
    Command {
        /// The command.
        what: String,
        /// Why.
        #[source]
        source: CmdError,
    },
    /// A WebDriver command did not answer at all.
    #[error("browser command did not answer within {secs} s: {what}")]
    Hung {
        /// The command.
        what: String,
        /// The bound.
        secs: u64,
    },
    /// A wait ran out.
    #[error("waited {secs} s for {what}; last seen: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The bound.
        secs: u64,
        /// The last state seen, to tell why.
        last: String,
    },
    /// A file of the harness could not be written.
    #[error("cannot write {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A result of the harness.
pub type Result<T, E = BrowserError> = std::result::Result<T, E>;

/// The size of the browser's viewport, in CSS pixels (device pixel ratio 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewport {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl Viewport {
    /// The official 7" Raspberry Pi touch display.
    pub const PI_DISPLAY: Viewport = Viewport {
        width: 800,
        height: 480,
    };
    /// A full-HD screen.
    pub const FULL_HD: Viewport = Viewport {
        width: 1920,
        height: 1080,
    };
}

impl std::fmt::Display for Viewport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// A headless Chromium behind its own chromedriver.
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    viewport: Viewport,
    artifacts: PathBuf,
    log: PathBuf,
    // Chromium's profile, and chromedriver's log; removed after the driver is killed.
    _scratch: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session whose viewport
    /// is `viewport`.
    pub async fn launch(viewport: Viewport) -> Result<Browser> {
        let chromium = find_binary("chromium", "KIOSK_E2E_CHROMIUM", CHROMIUM_PATHS, "chromium")?;
        let chromedriver = find_binary(
            "chromedriver",
            "KIOSK_E2E_CHROMEDRIVER",
            &[CHROMEDRIVER_PATH],
            "chromium-driver",
        )?;
        let scratch = tempfile::Builder::new()
            .prefix("kiosk-browser-")
            .tempdir()
            .map_err(|source| BrowserError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let profile = scratch.path().join("profile");
        let log = scratch.path().join("chromedriver.log");
        let port = free_port().map_err(|source| BrowserError::Io {
            path: "127.0.0.1:0".into(),
            source,
        })?;
        let driver = spawn_driver(&chromedriver, port, &log)?;
        let mut browser = Browser {
            client: None,
            driver,
            viewport,
            artifacts: artifacts_dir(),
            log,
            _scratch: scratch,
        };
        browser.wait_for_driver(port).await?;

        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-extensions".to_owned(),
            "--no-first-run".to_owned(),
            "--no-default-browser-check".to_owned(),
            "--hide-scrollbars".to_owned(),
            "--force-device-scale-factor=1".to_owned(),
            format!("--user-data-dir={}", profile.display()),
            format!("--window-size={},{}", viewport.width, viewport.height),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium, "args": args }),
        );
        caps.insert(
            "timeouts".into(),
            json!({ "pageLoad": 30_000, "script": 30_000, "implicit": 0 }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let connecting = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await;
        let client = match connecting {
            Ok(c) => c,
            Err(source) => {
                return Err(BrowserError::Session {
                    log: browser.driver_log(),
                    source,
                });
            }
        };
        browser.client = Some(client);
        browser.fit_viewport().await?;
        Ok(browser)
    }

    /// The viewport asked for.
    pub fn viewport(&self) -> Viewport {
        self.viewport
    }

    /// The WebDriver client, for what the helpers do not cover.
    pub fn client(&self) -> &Client {
        // Set in `launch` before the browser is handed out, taken only by `close`.
        self.client
            .as_ref()
            .unwrap_or_else(|| unreachable!("the session is open until close"))
    }

    /// Where screenshots go: `<target dir>/artifacts/`.
    pub fn artifacts_dir(&self) -> &Path {
        &self.artifacts
    }

    /// Opens `url` in the current window.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.cmd(format!("open {url}"), self.client().goto(url))
            .await
    }

    /// The current window's URL.
    pub async fn url(&self) -> Result<String> {
        self.cmd("read the URL", self.client().current_url())
            .await
            .map(|u| u.to_string())
    }

    /// Runs `script` (a function body: `return ...`) in the page with `args` as `arguments`.
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.cmd(
            format!("run script {script}"),
            self.client().execute(script, args),
        )
        .await
    }

    /// Polls until an element matches `css` and is displayed; returns it.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element> {
        let what = format!("an element displayed matching `{css}`");
        self.poll(&what, timeout, || async {
            match self.client().find(Locator::Css(css)).await {
                Ok(el) => match el.is_displayed().await {
                    Ok(true) => Ok(Ok(el)),
                    Ok(false) => Ok(Err("present but hidden".to_owned())),
                    Err(e) if retryable(&e) => Ok(Err(e.to_string())),
                    Err(e) => Err(e),
                },
                Err(e) if retryable(&e) => Ok(Err(e.to_string())),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Polls until the JavaScript expression `expr` is truthy in the page; returns its value.
    /// `what` names the awaited state in the error.
    pub async fn wait_until(&self, what: &str, expr: &str, timeout: Duration) -> Result<Value> {
        let script = format!("return ({expr});");
        self.poll(what, timeout, || async {
            match self.client().execute(&script, vec![]).await {
                Ok(v) if truthy(&v) => Ok(Ok(v)),
                Ok(v) => Ok(Err(v.to_string())),
                Err(e) if retryable(&e) => Ok(Err(e.to_string())),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Polls until the kiosk screen (`#app[data-screen]`) shows `screen`.
    pub async fn wait_for_screen(&self, screen: &str) -> Result<()> {
        let what = format!("the kiosk screen `{screen}`");
        let script = "const a = document.getElementById('app'); return a ? a.getAttribute('data-screen') : null;";
        self.poll(&what, WAIT, || async {
            match self.client().execute(script, vec![]).await {
                Ok(Value::String(s)) if s == screen => Ok(Ok(())),
                Ok(v) => Ok(Err(format!("screen {v}"))),
                Err(e) if retryable(&e) => Ok(Err(e.to_string())),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Polls until the text of the element matching `css` contains `text`; returns the text.
    pub async fn wait_for_text(&self, css: &str, text: &str, timeout: Duration) -> Result<String> {
        let what = format!("`{css}` to contain {text:?}");
        self.poll(&what, timeout, || async {
            match self.client().find(Locator::Css(css)).await {
                Ok(el) => match el.text().await {
                    Ok(t) if t.contains(text) => Ok(Ok(t)),
                    Ok(t) => Ok(Err(format!("{t:?}"))),
                    Err(e) if retryable(&e) => Ok(Err(e.to_string())),
                    Err(e) => Err(e),
                },
                Err(e) if retryable(&e) => Ok(Err(e.to_string())),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Clicks the element matching `css` as a pointer does (WebDriver element click: scrolled
    /// into view, refused if something covers it). Retries while the element is missing, stale
    /// (the page re-rendered it), covered or not yet interactable.
    pub async fn click(&self, css: &str) -> Result<()> {
        let what = format!("a click on `{css}`");
        self.poll(&what, WAIT, || async {
            match self.client().find(Locator::Css(css)).await {
                Ok(el) => match el.click().await {
                    Ok(()) => Ok(Ok(())),
                    Err(e) if retryable(&e) => Ok(Err(e.to_string())),
                    Err(e) => Err(e),
                },
                Err(e) if retryable(&e) => Ok(Err(e.to_string())),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Types `text` into the element matching `css` as a keyboard does.
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let what = format!("typing into `{css}`");
        self.poll(&what, WAIT, || async {
            match self.client().find(Locator::Css(css)).await {
                Ok(el) => match el.send_keys(text).await {
                    Ok(()) => Ok(Ok(())),
                    Err(e) if retryable(&e) => Ok(Err(e.to_string())),
                    Err(e) => Err(e),
                },
                Err(e) if retryable(&e) => Ok(Err(e.to_string())),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Types `text` into the element matching `css` one key at a time, `per_key` apart, as a
    /// person at a keyboard does (the page sees each keystroke arrive on its own).
    pub async fn type_slowly(&self, css: &str, text: &str, per_key: Duration) -> Result<()> {
        let mut buf = [0u8; 4];
        for c in text.chars() {
            self.type_into(css, c.encode_utf8(&mut buf)).await?;
            tokio::time::sleep(per_key).await;
        }
        Ok(())
    }

    /// Logs in to the CRM dashboard whose login form is on the current page as a person does:
    /// types the account's name and password at a person's pace (about 8 keys a second),
    /// presses "Log in" and waits until the form is gone. For the token form (an endpoint
    /// without accounts) type into `#token` instead.
    pub async fn log_in_dashboard(&self, user: &str, password: &str) -> Result<()> {
        const PACE: Duration = Duration::from_millis(120);
        self.wait_for("#user", WAIT).await?;
        self.click("#user").await?;
        self.type_slowly("#user", user, PACE).await?;
        self.click("#password").await?;
        self.type_slowly("#password", password, PACE).await?;
        self.click("form.login-form button[type=submit]").await?;
        self.wait_until(
            "the dashboard after the login",
            "!document.querySelector('form.login-form')",
            WAIT,
        )
        .await?;
        Ok(())
    }

    /// The visible text of the element matching `css` (waits for it to be displayed).
    pub async fn text(&self, css: &str) -> Result<String> {
        let el = self.wait_for(css, WAIT).await?;
        self.cmd(format!("read the text of `{css}`"), el.text())
            .await
    }

    /// Saves a PNG of the viewport as `<target dir>/artifacts/<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let png = self
            .cmd(
                format!("take the screenshot {name}"),
                self.client().screenshot(),
            )
            .await?;
        self.save_png(name, &png)
    }

    /// Saves a PNG of the element matching `css` alone (e.g. a QR code, for a decoder).
    pub async fn element_screenshot(&self, css: &str, name: &str) -> Result<PathBuf> {
        let el = self.wait_for(css, WAIT).await?;
        let png = self
            .cmd(format!("take the screenshot {name}"), el.screenshot())
            .await?;
        self.save_png(name, &png)
    }

    /// Opens a new window of the same session and switches to it; returns the window it left.
    pub async fn open_window(&self) -> Result<fantoccini::wd::WindowHandle> {
        let before = self
            .cmd("read the window handle", self.client().window())
            .await?;
        let new = self
            .cmd("open a window", self.client().new_window(false))
            .await?;
        self.switch_to(new.handle).await?;
        self.fit_viewport().await?;
        Ok(before)
    }

    /// Switches to the window `handle`.
    pub async fn switch_to(&self, handle: fantoccini::wd::WindowHandle) -> Result<()> {
        self.cmd(
            "switch windows",
            self.client().switch_to_window(handle.clone()),
        )
        .await
    }

    /// What makes the page hard to use: a control shown out of view, covered, or smaller than
    /// `min` CSS px either way; a page wider than the window; no control at all.
    pub async fn usability_problems(&self, min: f64) -> Result<Vec<String>> {
        let v = self.eval(USABILITY_PROBLEMS, vec![json!(min)]).await?;
        Ok(strings(v))
    }

    /// What makes a page that scrolls hard to use: each control, scrolled into view in turn,
    /// that still cannot be seen whole in the window, is covered, or is smaller than `min` CSS
    /// px either way; a page wider than the window. (A console page scrolls; a kiosk screen must
    /// not, which [`Browser::usability_problems`] checks.) Scrolls back to the top.
    pub async fn reachability_problems(&self, min: f64) -> Result<Vec<String>> {
        let v = self.eval(REACHABILITY_PROBLEMS, vec![json!(min)]).await?;
        Ok(strings(v))
    }

    /// axe-core's critical and serious violations on the page (the pinned axe-core of
    /// `tests/axe`, injected once per page).
    pub async fn axe_violations(&self) -> Result<Vec<String>> {
        if self
            .eval("return typeof window.axe === 'object';", vec![])
            .await?
            != json!(true)
        {
            self.eval(&format!("{}\nreturn true;", axe_source()), vec![])
                .await?;
        }
        Ok(strings(self.eval(AXE_RUN, vec![]).await?))
    }

    /// Ends the session (Chromium quits) and stops chromedriver.
    pub async fn close(mut self) -> Result<()> {
        if let Some(client) = self.client.take() {
            let closing = tokio::time::timeout(STARTUP, client.close()).await;
            match closing {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    return Err(BrowserError::Command {
                        what: "end the session".into(),
                        source,
                    });
                }
                Err(_) => {
                    return Err(BrowserError::Hung {
                        what: "end the session".into(),
                        secs: STARTUP.as_secs(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Makes the viewport (`innerWidth` x `innerHeight`) exactly the asked size: the window's
    /// outer size is grown by whatever the window takes for itself.
    async fn fit_viewport(&self) -> Result<()> {
        let Viewport { width, height } = self.viewport;
        for _ in 0..3 {
            let inner = self
                .eval("return [window.innerWidth, window.innerHeight];", vec![])
                .await?;
            let (w, h) = (
                inner[0].as_u64().unwrap_or(0) as u32,
                inner[1].as_u64().unwrap_or(0) as u32,
            );
            if (w, h) == (width, height) {
                return Ok(());
            }
            let (ow, oh) = self
                .cmd("read the window size", self.client().get_window_size())
                .await?;
            let ow = (ow as u32 + width).saturating_sub(w);
            let oh = (oh as u32 + height).saturating_sub(h);
            self.cmd(
                format!("resize the window to {ow}x{oh}"),
                self.client().set_window_size(ow, oh),
            )
            .await?;
        }
        let inner = self
            .eval("return [window.innerWidth, window.innerHeight];", vec![])
            .await?;
        Err(BrowserError::Timeout {
            what: format!("a {} viewport", self.viewport),
            secs: 0,
            last: inner.to_string(),
        })
    }

    fn save_png(&self, name: &str, png: &[u8]) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.artifacts).map_err(|source| BrowserError::Io {
            path: self.artifacts.clone(),
            source,
        })?;
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.artifacts.join(format!("{safe}.png"));
        std::fs::write(&path, png).map_err(|source| BrowserError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// Runs one WebDriver command with a bound, so a wedged browser fails the test.
    async fn cmd<T>(
        &self,
        what: impl Into<String>,
        fut: impl Future<Output = Result<T, CmdError>>,
    ) -> Result<T> {
        match tokio::time::timeout(STARTUP, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(BrowserError::Command {
                what: what.into(),
                source,
            }),
            Err(_) => Err(BrowserError::Hung {
                what: what.into(),
                secs: STARTUP.as_secs(),
            }),
        }
    }

    /// Calls `attempt` every [`POLL`] until it gives `Ok(Ok(v))` or `timeout` passes; an
    /// `Ok(Err(seen))` is "not yet" (`seen` ends in the error), an `Err` fails at once.
    async fn poll<T, F, Fut>(&self, what: &str, timeout: Duration, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Result<T, String>, CmdError>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let last = match tokio::time::timeout(left.max(POLL), attempt()).await {
                Ok(Ok(Ok(v))) => return Ok(v),
                Ok(Ok(Err(seen))) => seen,
                Ok(Err(source)) => {
                    return Err(BrowserError::Command {
                        what: what.to_owned(),
                        source,
                    });
                }
                Err(_) => "the browser did not answer".to_owned(),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(BrowserError::Timeout {
                    what: what.to_owned(),
                    secs: timeout.as_secs(),
                    last,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn wait_for_driver(&mut self, port: u16) -> Result<()> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = tokio::time::Instant::now() + STARTUP;
        loop {
            if let Ok(Some(status)) = self.driver.try_wait() {
                return Err(BrowserError::DriverNotReady {
                    reason: format!("it exited ({status})"),
                    log: self.driver_log(),
                });
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BrowserError::DriverNotReady {
                    reason: format!("nothing listened on {addr} in {} s", STARTUP.as_secs()),
                    log: self.driver_log(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The last lines chromedriver wrote.
    fn driver_log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads its own process group, which its Chromium processes join: killing
        // the group leaves no browser behind even when the test panicked mid-session.
        let pgid = self.driver.id() as libc::pid_t;
        // SAFETY: kill(2) on the process group this Browser created; no memory is involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn find_binary(
    what: &'static str,
    env: &'static str,
    defaults: &[&str],
    package: &'static str,
) -> Result<PathBuf> {
    find_binary_in(what, env, std::env::var_os(env), defaults, package)
}

/// The first of `overridden` (the environment variable's value) or else `defaults` that is a file.
fn find_binary_in(
    what: &'static str,
    env: &'static str,
    overridden: Option<std::ffi::OsString>,
    defaults: &[&str],
    package: &'static str,
) -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = match overridden {
        Some(p) => vec![PathBuf::from(p)],
        None => defaults.iter().map(PathBuf::from).collect(),
    };
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| BrowserError::Missing {
            what,
            looked: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            package,
            env,
        })
}

fn spawn_driver(path: &Path, port: u16, log: &Path) -> Result<Child> {
    use std::os::unix::process::CommandExt as _;
    let out = std::fs::File::create(log).map_err(|source| BrowserError::Io {
        path: log.to_owned(),
        source,
    })?;
    let err = out.try_clone().map_err(|source| BrowserError::Io {
        path: log.to_owned(),
        source,
    })?;
    Command::new(path)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|source| BrowserError::Spawn {
            path: path.to_owned(),
            source,
        })
}

/// A loopback port free right now (chromedriver binds it a moment later; a clash shows as
/// "chromedriver did not start" with its log).
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// `<target dir>/artifacts`: `CARGO_TARGET_DIR` if set, else the target dir the test binary runs
/// from (`<target>/<profile>/deps/<binary>`), else the workspace's `target/`.
pub fn artifacts_dir() -> PathBuf {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("artifacts");
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(deps) = exe.parent().filter(|d| d.ends_with("deps")) {
            if let Some(target) = deps.parent().and_then(Path::parent) {
                return target.join("artifacts");
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("artifacts")
}

/// Errors worth another try: the element is not there yet, was re-rendered, is covered by
/// something (a notice fading out) or is not interactable yet.
fn retryable(e: &CmdError) -> bool {
    e.is_no_such_element()
        || e.is_stale_element_reference()
        || e.is_element_not_interactable()
        || matches!(e, CmdError::Standard(w) if w.error == fantoccini::error::ErrorStatus::ElementClickIntercepted)
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The probe behind [`Browser::usability_problems`].
const USABILITY_PROBLEMS: &str = r#"
const min = arguments[0];
const vw = window.innerWidth, vh = window.innerHeight;
const bad = [];
if (document.documentElement.scrollWidth > vw) bad.push(`page is ${document.documentElement.scrollWidth}px wide`);
const controls = document.querySelectorAll('button, input, select, textarea, a[href]');
let n = 0;
for (const c of controls) {
  if (c.getClientRects().length === 0 || getComputedStyle(c).visibility === 'hidden') continue;
  n++;
  const r = c.getBoundingClientRect();
  const name = `${c.tagName.toLowerCase()} "${(c.textContent || c.value || '').trim().slice(0, 30)}"`;
  if (r.width < min || r.height < min) bad.push(`${name} is ${Math.round(r.width)}x${Math.round(r.height)} px`);
  if (r.left < -0.5 || r.top < -0.5 || r.right > vw + 0.5 || r.bottom > vh + 0.5) {
    bad.push(`${name} is out of view (${Math.round(r.left)},${Math.round(r.top)} to ${Math.round(r.right)},${Math.round(r.bottom)})`);
    continue;
  }
  const hit = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2);
  if (!(hit && (hit === c || c.contains(hit)))) bad.push(`${name} is covered`);
}
if (n === 0) bad.push('no control shown at all');
return bad;
"#;

const REACHABILITY_PROBLEMS: &str = r#"
const min = arguments[0];
const bad = [];
if (document.documentElement.scrollWidth > window.innerWidth) bad.push(`page is ${document.documentElement.scrollWidth}px wide`);
for (const c of document.querySelectorAll('button, select, input, textarea, a[href]')) {
  if (c.getClientRects().length === 0 || getComputedStyle(c).visibility === 'hidden') continue;
  c.scrollIntoView({ block: 'center', inline: 'nearest' });
  const r = c.getBoundingClientRect();
  const name = `${c.tagName.toLowerCase()} "${(c.getAttribute('aria-label') || c.textContent || c.name || '').trim().slice(0, 40)}"`;
  if (r.width < min || r.height < min) bad.push(`${name} is ${Math.round(r.width)}x${Math.round(r.height)} px`);
  if (r.left < -0.5 || r.right > window.innerWidth + 0.5 || r.top < -0.5 || r.bottom > window.innerHeight + 0.5) {
    bad.push(`${name} cannot be brought into view`);
    continue;
  }
  const hit = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2);
  const labelled = c.labels && [...c.labels].some((l) => l.contains(hit));
  if (!(hit && (hit === c || c.contains(hit) || labelled))) bad.push(`${name} is covered by ${hit && hit.outerHTML.slice(0, 80)}`);
}
window.scrollTo(0, 0);
return bad;
"#;

/// Critical and serious axe-core violations, a line each with up to four of their nodes.
const AXE_RUN: &str = r#"
return axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations
  .filter((v) => v.impact === 'critical' || v.impact === 'serious')
  .map((v) => `${v.id} (${v.impact}): ${v.help}: ` + v.nodes.slice(0, 4)
    .map((n) => n.target.join(' ')).join(' | ')));
"#;

/// The pinned axe-core that `scripts/test-setup` installs under `tests/axe`.
pub fn axe_source() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("axe/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run scripts/test-setup (npm ci in tests/axe installs the pinned axe-core)",
            path.display()
        )
    })
}

fn strings(v: Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        other => vec![format!("unexpected answer: {other}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_chromedriver_is_reported_with_its_debian_package_and_override() {
        let e = find_binary_in(
            "chromedriver",
            "KIOSK_E2E_CHROMEDRIVER",
            None,
            &["/nonexistent/chromedriver"],
            "chromium-driver",
        )
        .unwrap_err();
        let shown = e.to_string();
        assert!(shown.contains("chromedriver not found"), "{shown}");
        assert!(shown.contains("/nonexistent/chromedriver"), "{shown}");
        assert!(shown.contains("`chromium-driver`"), "{shown}");
        assert!(shown.contains("KIOSK_E2E_CHROMEDRIVER"), "{shown}");
    }

    #[test]
    fn an_override_replaces_the_default_paths() {
        let here = std::env::current_exe().unwrap();
        let found = find_binary_in(
            "chromium",
            "KIOSK_E2E_CHROMIUM",
            Some(here.clone().into()),
            &["/nonexistent/chromium"],
            "chromium",
        )
        .unwrap();
        assert_eq!(found, here);
        let refused = find_binary_in(
            "chromium",
            "KIOSK_E2E_CHROMIUM",
            Some("/nonexistent/override".into()),
            &[here.to_str().unwrap()],
            "chromium",
        );
        assert!(refused.is_err(), "an override is not silently ignored");
    }
}
