//! The real MFRC522 bus on a Linux board: the only module that names `linux-embedded-hal`.
//! Opens the spidev node in SPI mode 0 at the profile's clock and, when the profile names one,
//! requests the NRSTPD reset line on a GPIO character device; everything else takes the
//! `embedded-hal` traits.
//!
//! Board set-up on a Raspberry Pi: `dtparam=spi=on` in `/boot/firmware/config.txt` gives
//! `/dev/spidev0.0` (CE0) and `/dev/spidev0.1` (CE1); the kiosk user needs the `spi` and `gpio`
//! groups. The MFRC522 allows 10 MHz, but jumper wires longer than ~20 cm need 1 MHz or less.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use linux_embedded_hal::gpio_cdev::{Chip, EventRequestFlags, LineEventHandle, LineRequestFlags};
use linux_embedded_hal::spidev::{SpiModeFlags, SpidevOptions};
use linux_embedded_hal::{CdevPin, Delay, SpidevDevice};
use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::lean::IrqLine;
use super::rc522::{Mfrc522Config, Mfrc522Reader, NoResetPin, Transceive};
use super::{CardReader, ReaderKind, TenantKey};

/// Errors opening the SPI or GPIO device of an MFRC522.
#[derive(Debug, thiserror::Error)]
pub enum LinuxError {
    /// The spidev node cannot be opened.
    #[error(
        "cannot open spi device {path}: check that it exists (dtparam=spi=on in \
         /boot/firmware/config.txt) and that the kiosk user is in the spi group"
    )]
    OpenSpi {
        /// The spidev path.
        path: String,
        /// Why.
        #[source]
        source: linux_embedded_hal::SPIError,
    },
    /// The spidev node refuses the mode or clock.
    #[error("cannot set spi mode 0 at {hz} Hz on {path}: use a clock the controller supports")]
    ConfigureSpi {
        /// The spidev path.
        path: String,
        /// The clock asked for.
        hz: u32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The reset line cannot be requested.
    #[error(
        "cannot use line {line} of {chip} as the mfrc522 reset: check the chip path, the line \
         number (BCM numbering on a Pi) and that no other program holds it"
    )]
    ResetLine {
        /// The GPIO chip path.
        chip: String,
        /// The line offset.
        line: u32,
        /// Why.
        #[source]
        source: linux_embedded_hal::gpio_cdev::Error,
    },
    /// The IRQ line cannot be requested for edge events.
    #[error(
        "cannot use line {line} of {chip} as the mfrc522 irq input: check the chip path, the line \
         number (BCM numbering on a Pi) and that no other program holds it"
    )]
    IrqLine {
        /// The GPIO chip path.
        chip: String,
        /// The line offset.
        line: u32,
        /// Why.
        #[source]
        source: linux_embedded_hal::gpio_cdev::Error,
    },
    /// Invalid reader settings.
    #[error(transparent)]
    Settings(#[from] super::rc522::Mfrc522Error),
}

/// Opens `/dev/spidevB.C` in SPI mode 0 at `hz`.
pub fn open_spi(path: &str, hz: u32) -> Result<SpidevDevice, LinuxError> {
    let mut spi = SpidevDevice::open(path).map_err(|source| LinuxError::OpenSpi {
        path: path.to_owned(),
        source,
    })?;
    let options = SpidevOptions::new()
        .bits_per_word(8)
        .max_speed_hz(hz)
        .mode(SpiModeFlags::SPI_MODE_0)
        .build();
    spi.configure(&options)
        .map_err(|source| LinuxError::ConfigureSpi {
            path: path.to_owned(),
            hz,
            source,
        })?;
    Ok(spi)
}

/// Requests `line` of `chip` as an output, driven high (chip running).
pub fn open_reset_line(chip: &str, line: u32) -> Result<CdevPin, LinuxError> {
    let err = |source| LinuxError::ResetLine {
        chip: chip.to_owned(),
        line,
        source,
    };
    let mut gpio = Chip::new(chip).map_err(err)?;
    let handle = gpio
        .get_line(line)
        .and_then(|l| l.request(LineRequestFlags::OUTPUT, 1, "kiosk-mfrc522"))
        .map_err(err)?;
    CdevPin::new(handle).map_err(err)
}

/// The MFRC522's IRQ pin on a GPIO character device: the kernel queues its falling edges (the
/// driver sets IRqInv, so the pin goes low when an interrupt is pending) and the reader thread
/// sleeps in `poll(2)` until one arrives, instead of reading ComIrqReg over SPI in a loop.
pub struct CdevIrq {
    events: LineEventHandle,
}

impl IrqLine for CdevIrq {
    fn wait(&mut self, timeout: Duration) -> Result<bool, String> {
        let deadline = Instant::now() + timeout;
        loop {
            // Level first: the interrupt may be pending already, and an edge queued earlier may
            // belong to an interrupt that has been cleared since.
            if self.events.get_value().map_err(|e| e.to_string())? == 0 {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let mut fds = [PollFd::new(self.events.as_fd(), PollFlags::POLLIN)];
            let millis = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let ready =
                nix::poll::poll(&mut fds, PollTimeout::from(millis)).map_err(|e| e.to_string())?;
            if ready > 0 {
                // Consume the edge; the loop checks the level again.
                self.events.get_event().map_err(|e| e.to_string())?;
            }
        }
    }
}

/// Requests `line` of `chip` as an input reporting falling edges (the MFRC522's IRQ pin).
pub fn open_irq_line(chip: &str, line: u32) -> Result<CdevIrq, LinuxError> {
    let err = |source| LinuxError::IrqLine {
        chip: chip.to_owned(),
        line,
        source,
    };
    let mut gpio = Chip::new(chip).map_err(err)?;
    let events = gpio
        .get_line(line)
        .and_then(|l| {
            l.events(
                LineRequestFlags::INPUT,
                EventRequestFlags::FALLING_EDGE,
                "kiosk-mfrc522-irq",
            )
        })
        .map_err(err)?;
    Ok(CdevIrq { events })
}

/// An MFRC522 reader on the board's spidev, (optional) reset line and (optional) IRQ line.
pub fn open_mfrc522(
    spi_device: &str,
    spi_hz: u32,
    reset: Option<(&str, u32)>,
    irq: Option<(&str, u32)>,
    transceive: Transceive,
    config: Mfrc522Config,
    key: TenantKey,
) -> Result<Box<dyn CardReader>, LinuxError> {
    let spi = open_spi(spi_device, spi_hz)?;
    let irq = match irq {
        Some((chip, line)) => Some(open_irq_line(chip, line)?),
        None => None,
    };
    Ok(match reset {
        Some((chip, line)) => {
            let pin = open_reset_line(chip, line)?;
            let reader =
                Mfrc522Reader::new(spi, Some(pin), Delay, config, ReaderKind::Mfrc522, key)?;
            Box::new(wire(reader, transceive, irq))
        }
        None => {
            let reader = Mfrc522Reader::new(
                spi,
                None::<NoResetPin>,
                Delay,
                config,
                ReaderKind::Mfrc522,
                key,
            )?;
            Box::new(wire(reader, transceive, irq))
        }
    })
}

fn wire<P: embedded_hal::digital::OutputPin>(
    mut reader: Mfrc522Reader<SpidevDevice, P, Delay>,
    transceive: Transceive,
    irq: Option<CdevIrq>,
) -> Mfrc522Reader<SpidevDevice, P, Delay> {
    reader.set_transceive(transceive);
    if let Some(irq) = irq {
        reader.set_irq(Box::new(irq));
    }
    reader
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_spidev_node_names_the_fix() {
        let Err(err) = open_spi("/dev/spidev-does-not-exist", 1_000_000) else {
            panic!("a missing spidev node opened");
        };
        let msg = err.to_string();
        assert!(msg.contains("/dev/spidev-does-not-exist"), "{msg}");
        assert!(msg.contains("dtparam=spi=on"), "{msg}");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn missing_irq_gpio_chip_names_the_chip_the_line_and_the_role() {
        let Err(err) = open_irq_line("/dev/gpiochip-does-not-exist", 24) else {
            panic!("a missing gpio chip opened");
        };
        let msg = err.to_string();
        assert!(msg.contains("/dev/gpiochip-does-not-exist"), "{msg}");
        assert!(msg.contains("line 24") && msg.contains("irq"), "{msg}");
        assert!(std::error::Error::source(&err).is_some());
    }
}
