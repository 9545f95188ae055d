//! A throwaway PostgreSQL server for tests and benchmarks (the same suite runs on SQLite and
//! PostgreSQL). Uses Debian's `postgresql` package: `initdb` and `pg_ctl` from
//! `/usr/lib/postgresql/*/bin`, run as the `postgres` user when the caller is root. The server
//! lives in a temporary directory, listens on a free loopback port and a socket in that
//! directory, and is stopped and deleted on drop, or by a watchdog when the process that
//! started it exits (a server held in a `static` is never dropped).
//!
//! Durability is traded for speed (`fsync=off`, `synchronous_commit=off`): this server holds
//! nothing worth keeping.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why the throwaway server could not start.
#[derive(Debug, thiserror::Error)]
pub enum TempPgError {
    /// No PostgreSQL binaries.
    #[error(
        "no /usr/lib/postgresql/*/bin/initdb; install the postgresql package (apt-get install -y postgresql)"
    )]
    NotInstalled,
    /// A command could not run.
    #[error("cannot run {command}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A command failed.
    #[error("{command} failed: {output}")]
    Failed {
        /// The command.
        command: String,
        /// Its stderr and stdout.
        output: String,
    },
    /// File system trouble in the temporary directory.
    #[error("cannot prepare {path}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Creating a database failed.
    #[error("cannot create a test database")]
    Postgres(#[from] tokio_postgres::Error),
}

/// A running throwaway PostgreSQL server.
pub struct TempPostgres {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    port: u16,
}

fn bin_dir() -> Result<PathBuf, TempPgError> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| TempPgError::NotInstalled)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, b)| b)
        .ok_or(TempPgError::NotInstalled)
}

fn run(cmd: &mut Command) -> Result<(), TempPgError> {
    let command = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| TempPgError::Spawn {
            command: command.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(TempPgError::Failed {
            command,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ),
        })
    }
}

fn is_root() -> bool {
    // /proc/self is owned by the effective user.
    std::os::unix::fs::MetadataExt::uid(&match std::fs::metadata("/proc/self") {
        Ok(m) => m,
        Err(_) => return false,
    }) == 0
}

impl TempPostgres {
    /// Initialises and starts a server; waits until it accepts connections.
    pub fn start() -> Result<Self, TempPgError> {
        Self::start_with(None)
    }

    /// [`TempPostgres::start`] with TLS on (`ssl = on`, this certificate chain and key, PEM):
    /// every database but `postgres` accepts TLS connections only (`hostssl`), so a client that
    /// gets in used TLS.
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Result<Self, TempPgError> {
        Self::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> Result<Self, TempPgError> {
        let bin = bin_dir()?;
        let as_postgres = is_root();
        let dir =
            std::env::temp_dir().join(format!("crm-pg-{}", hex::encode(rand::random::<[u8; 6]>())));
        let io = |source| TempPgError::Io {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        if as_postgres {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io)?
            .port();
        let pg = TempPostgres {
            dir,
            bin,
            as_postgres,
            port,
        };
        let data = pg.dir.join("data");
        run(pg.command("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-locale",
        ]))?;
        let mut options = format!(
            "-p {} -k {} -h 127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            pg.port,
            pg.dir.display()
        );
        if let Some((cert, key)) = tls {
            use std::os::unix::fs::PermissionsExt as _;
            let write = |name: &str, text: &str| -> Result<PathBuf, TempPgError> {
                let path = pg.dir.join(name);
                let io = |source| TempPgError::Io {
                    path: path.display().to_string(),
                    source,
                };
                std::fs::write(&path, text).map_err(io)?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(io)?;
                if pg.as_postgres {
                    run(Command::new("chown").arg("postgres:postgres").arg(&path))?;
                }
                Ok(path)
            };
            let cert = write("server.crt", cert)?;
            let key = write("server.key", key)?;
            let hba = write(
                "pg_hba.conf",
                "local all all trust\nhostnossl postgres all 127.0.0.1/32 trust\nhostssl all all 127.0.0.1/32 trust\n",
            )?;
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={} -c hba_file={}",
                cert.display(),
                key.display(),
                hba.display()
            ));
        }
        run(pg
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-w", "-t", "60", "-l"])
            .arg(pg.dir.join("log"))
            .arg("start"))?;
        pg.spawn_watchdog();
        Ok(pg)
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn stop_script(&self) -> String {
        let prefix = if self.as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        format!(
            "{prefix}{} -D '{}' stop -m immediate >/dev/null 2>&1; rm -rf '{}'",
            self.bin.join("pg_ctl").display(),
            self.dir.join("data").display(),
            self.dir.display()
        )
    }

    fn spawn_watchdog(&self) {
        let script = format!(
            "while kill -0 {} 2>/dev/null && [ -d '{}' ]; do sleep 1; done; {}",
            std::process::id(),
            self.dir.display(),
            self.stop_script()
        );
        // Best effort: without the watchdog a server in a static outlives the test process.
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    /// URL of the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The server's directory (data, log, socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates an empty database and returns its URL.
    pub async fn fresh_database(&self) -> Result<String, TempPgError> {
        let name = format!("t_{}", hex::encode(rand::random::<[u8; 6]>()));
        let (client, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await?;
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        drop(client);
        let _ = task.await;
        Ok(format!(
            "postgres://postgres@127.0.0.1:{}/{name}",
            self.port
        ))
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args(["-c", &self.stop_script()])
            .status();
    }
}
