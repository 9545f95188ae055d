//! Lean ISO 14443A exchange with an MFRC522: REQA/WUPA, the anticollision cascade (4-, 7- and
//! 10-byte UIDs, bit collisions), SELECT with CRC_A, and HLTA, spoken directly in the chip's SPI
//! register protocol with the fewest transfers the protocol allows. The `mfrc522` crate still
//! initialises the chip; [`super::rc522`] picks this path or the crate's per profile
//! (`transceive = "lean"` or `"crate"`).
//!
//! # Where the crate's transfers went
//!
//! Counted on the simulator ([`super::mfrc522sim`], 1 MHz, 1.025 ms response timer). The crate's
//! `transceive` spends, for every frame: CommandReg = Idle, ComIrqReg clear, FIFO flush, FIFO
//! write, CommandReg = Transceive, BitFramingReg (6 writes); then ComIrqReg reads in a loop until
//! the answer or the timer (one read per 26 µs of air and timer time: about 14 for an answer,
//! about 40 for a 1 ms timeout); then ErrorReg, FIFOLevelReg, the FIFO and ControlReg (4 reads).
//! Its SELECT computes CRC_A on the chip's coprocessor twice (the frame's, then the SAK's, each
//! Idle, DivIrqReg clear, flush, FIFO write, CalcCRC, DivIrqReg poll, Idle, two result reads: 8
//! to 9 transfers), HLTA once more, and `select` starts with a read-modify-write of CollReg.
//!
//! This path, per frame: FIFO write, ComIrqReg clear, CommandReg = Transceive, BitFramingReg with
//! StartSend and the framing bits (4 writes, no Idle: a new command replaces the running one; no
//! flush unless the last frame left bytes behind); then it waits without touching the bus (the
//! IRQ line when the profile wires it, else a sleep for the frame's known air time, or the timer
//! for REQA/WUPA/HLTA whose answer may not come), reads ComIrqReg, ErrorReg, FIFOLevelReg and
//! ControlReg in one transfer (the SPI read protocol takes a list of addresses), then the FIFO
//! in one transfer. CRC_A is computed in software (a dozen table-free shifts per byte), never on
//! the coprocessor, and the SAK's CRC_A is checked in software. CollReg is read only after a
//! collision.
//!
//! | step | crate | lean |
//! |---|---|---|
//! | REQA/WUPA with a card (ATQA) | ~28 | 6 |
//! | REQA/WUPA, empty field (timeout) | ~49 | 5 |
//! | ANTICOLLISION, one cascade level | ~25 | 6 |
//! | SELECT, one cascade level (with CRC_A) | ~44 | 6 |
//! | HLTA (timeout is success) | ~54 | 5 |
//! | card in field to UID, 4/7/10-byte UID | 207 / 318 / 429 | 23 / 35 / 47 |
//! | poll with a held card (REQA timeout, WUPA, select, HLTA), 4/7/10 | 256 / 367 / 478 | 28 / 40 / 52 |
//!
//! (The crate's per-step figures are estimated from its code and the simulator's bus timing, its
//! status polling depending on how long the air takes; the totals on both sides are measured by
//! `scripts/bench --only card`, and `drivers/tests/card_lean.rs` asserts the lean counts.)
//!
//! # Waiting
//!
//! With an IRQ line ([`IrqLine`]), the chip is told to drive IRQ for RxIRq, ErrIRq and TimerIRq
//! (ComIEnReg, with IRqInv: active low; DivIEnReg's IRQPushPull: driven, not open drain) and the
//! driver sleeps on the line's edge. Without one it sleeps for the frame's modelled air time
//! (ISO 14443A at 106 kbit/s, plus the frame delay time) and then reads the status; if the frame
//! is not done, it sleeps until the timer must have expired and polls in 100 µs steps, a bounded
//! number of times (a chip that never finishes is gone: [`super::rc522::BusError::Stuck`]).

use std::time::Duration;

use embedded_hal::delay::DelayNs;
use embedded_hal::spi::SpiDevice;

use super::rc522::{BusError, GuardedSpi};

/// A GPIO input wired to the MFRC522's IRQ pin.
pub trait IrqLine: Send {
    /// Waits until the chip signals an interrupt or `timeout` passes; whether it signalled.
    fn wait(&mut self, timeout: Duration) -> Result<bool, String>;
}

type LeanError<E> = mfrc522::Error<BusError<E>>;

// Registers (datasheet 9.2).
const COMMAND: u8 = 0x01;
const COM_IEN: u8 = 0x02;
const DIV_IEN: u8 = 0x03;
const COM_IRQ: u8 = 0x04;
const ERROR: u8 = 0x06;
const FIFO_DATA: u8 = 0x09;
const FIFO_LEVEL: u8 = 0x0A;
const CONTROL: u8 = 0x0C;
const BIT_FRAMING: u8 = 0x0D;
const COLL: u8 = 0x0E;

const CMD_TRANSCEIVE: u8 = 0x0C;
const START_SEND: u8 = 0x80;
const FLUSH_BUFFER: u8 = 0x80;

const RX_IRQ: u8 = 1 << 5;
const ERR_IRQ: u8 = 1 << 1;
const TIMER_IRQ: u8 = 1 << 0;
/// ComIEnReg: IRqInv (pin low when active), RxIEn, ErrIEn, TimerIEn.
const COM_IEN_VALUE: u8 = 0x80 | RX_IRQ | ERR_IRQ | TIMER_IRQ;
/// DivIEnReg: IRQPushPull (the pin is driven both ways), no CRC interrupt.
const DIV_IEN_VALUE: u8 = 0x80;

const REQA: u8 = 0x26;
const WUPA: u8 = 0x52;
const HLTA: u8 = 0x50;
const SEL: [u8; 3] = [0x93, 0x95, 0x97];

/// One bit at 106 kbit/s (128 carrier cycles of 13.56 MHz).
const BIT_NS: u64 = 9_440;
/// Frame delay time, reader's last bit to the card's first (ISO 14443-3, n = 9).
const FDT_NS: u64 = 91_000;
/// Slack on top of the modelled time before the first status read.
const MARGIN_NS: u64 = 20_000;
/// Status poll step once the modelled time has passed without an answer.
const STEP_NS: u32 = 100_000;
/// Status reads after the timer must have expired before the chip counts as hung.
const MAX_LATE_POLLS: u32 = 20;
/// Extra time the IRQ wait allows beyond the timer.
const IRQ_SLACK: Duration = Duration::from_millis(5);

/// Air time of a frame of `bits` data bits: start, one parity bit per byte, end.
fn air_ns(bits: usize) -> u64 {
    let bits = bits as u64;
    (bits + bits / 8 + 2) * BIT_NS
}

/// CRC_A of ISO/IEC 14443-3 (reflected CRC-16/CCITT from 0x6363), low byte first.
pub(crate) fn crc_a(data: &[u8]) -> [u8; 2] {
    let mut crc: u16 = 0x6363;
    for &byte in data {
        let mut b = byte ^ (crc as u8);
        b ^= b << 4;
        crc = (crc >> 8) ^ (u16::from(b) << 8) ^ (u16::from(b) << 3) ^ (u16::from(b) >> 4);
    }
    crc.to_le_bytes()
}

/// How long a frame's answer takes at most, to know when to look.
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// An answer of this many bits is expected (anticollision, SELECT).
    Answer(usize),
    /// The answer may not come (REQA, WUPA, HLTA): look once the timer has expired.
    Timer,
}

/// What a frame brought back.
#[derive(Debug)]
struct Rx {
    data: [u8; 16],
    len: usize,
    last_bits: u8,
    /// CollReg after a bit collision.
    coll: Option<u8>,
}

/// The lean path's state: the IRQ line if wired, and whether the FIFO needs a flush.
pub(crate) struct Lean {
    irq: Option<Box<dyn IrqLine>>,
    fifo_dirty: bool,
    timer_ns: u64,
}

impl Lean {
    /// `timer_ns`: the response timer the driver configured (TReloadReg).
    pub(crate) fn new(timer_ns: u64) -> Self {
        Lean {
            irq: None,
            fifo_dirty: true,
            timer_ns,
        }
    }

    pub(crate) fn set_irq(&mut self, irq: Box<dyn IrqLine>) {
        self.irq = Some(irq);
    }

    /// After the chip's (re)initialisation: route the interrupts to the IRQ pin when wired.
    pub(crate) fn init<S: SpiDevice>(
        &mut self,
        bus: &GuardedSpi<S>,
    ) -> Result<(), BusError<S::Error>> {
        self.fifo_dirty = true;
        if self.irq.is_some() {
            bus.write_reg(COM_IEN, COM_IEN_VALUE)?;
            bus.write_reg(DIV_IEN, DIV_IEN_VALUE)?;
        }
        Ok(())
    }

    /// One frame: transmit `tx` (`tx_last_bits` valid bits in its last byte, 0 for all), receive
    /// with the first bit at `rx_align`.
    fn exchange<S: SpiDevice, D: DelayNs>(
        &mut self,
        bus: &GuardedSpi<S>,
        delay: &mut D,
        tx: &[u8],
        tx_last_bits: u8,
        rx_align: u8,
        wait: Wait,
    ) -> Result<Rx, LeanError<S::Error>> {
        let comm = mfrc522::Error::Comm;
        if self.fifo_dirty {
            bus.write_reg(FIFO_LEVEL, FLUSH_BUFFER).map_err(comm)?;
            self.fifo_dirty = false;
        }
        bus.write_burst(FIFO_DATA, tx).map_err(comm)?;
        bus.write_reg(COM_IRQ, 0x7F).map_err(comm)?;
        bus.write_reg(COMMAND, CMD_TRANSCEIVE).map_err(comm)?;
        bus.write_reg(
            BIT_FRAMING,
            START_SEND | ((rx_align & 0x07) << 4) | (tx_last_bits & 0x07),
        )
        .map_err(comm)?;

        let tx_bits = match tx_last_bits {
            0 => tx.len() * 8,
            n => (tx.len().saturating_sub(1)) * 8 + usize::from(n),
        };
        let tx_ns = air_ns(tx_bits);
        let [irq, error, level, control] = self.wait_done(bus, delay, tx_ns, wait)?;

        if irq & (RX_IRQ | ERR_IRQ) == 0 {
            // The timer expired first: nobody answered.
            self.fifo_dirty = level != 0;
            return Err(mfrc522::Error::Timeout);
        }
        // The crate's order of precedence, so both paths classify a frame alike.
        let err = if error & 0x01 != 0 {
            Some(mfrc522::Error::Protocol)
        } else if error & 0x02 != 0 {
            Some(mfrc522::Error::Parity)
        } else if error & 0x04 != 0 {
            Some(mfrc522::Error::Crc)
        } else if error & 0x08 != 0 {
            None
        } else if error & 0x10 != 0 {
            Some(mfrc522::Error::BufferOverflow)
        } else if error & 0x40 != 0 {
            Some(mfrc522::Error::Overheating)
        } else if error & 0x80 != 0 {
            Some(mfrc522::Error::Wr)
        } else {
            None
        };
        if let Some(e) = err {
            self.fifo_dirty = level != 0;
            return Err(e);
        }
        let coll = if error & 0x08 != 0 {
            Some(bus.read_reg(COLL).map_err(comm)?)
        } else {
            None
        };
        let mut rx = Rx {
            data: [0; 16],
            len: usize::from(level),
            last_bits: control & 0x07,
            coll,
        };
        if rx.len > rx.data.len() {
            self.fifo_dirty = true;
            return Err(mfrc522::Error::NoRoom);
        }
        if rx.len > 0 {
            bus.read_fifo(FIFO_DATA, &mut rx.data[..rx.len])
                .map_err(comm)?;
        }
        Ok(rx)
    }

    /// Waits for the end of the frame and returns ComIrqReg, ErrorReg, FIFOLevelReg and
    /// ControlReg (one transfer per look).
    fn wait_done<S: SpiDevice, D: DelayNs>(
        &mut self,
        bus: &GuardedSpi<S>,
        delay: &mut D,
        tx_ns: u64,
        wait: Wait,
    ) -> Result<[u8; 4], LeanError<S::Error>> {
        let comm = mfrc522::Error::Comm;
        let done = |s: &[u8; 4]| s[0] & (RX_IRQ | ERR_IRQ | TIMER_IRQ) != 0;
        let timer_end = tx_ns + self.timer_ns + MARGIN_NS;
        if let Some(irq) = self.irq.as_mut() {
            let timeout = Duration::from_nanos(timer_end) + IRQ_SLACK;
            // A few edges may be stale (an interrupt of the previous frame, cleared since):
            // the status read tells.
            for _ in 0..4 {
                let signalled = irq
                    .wait(timeout)
                    .map_err(|e| mfrc522::Error::Comm(BusError::Irq(e)))?;
                let status = bus
                    .read_status([COM_IRQ, ERROR, FIFO_LEVEL, CONTROL])
                    .map_err(comm)?;
                if done(&status) {
                    return Ok(status);
                }
                if !signalled {
                    break;
                }
            }
            return Err(mfrc522::Error::Comm(BusError::Stuck));
        }
        let first = match wait {
            Wait::Answer(bits) => tx_ns + FDT_NS + air_ns(bits) + MARGIN_NS,
            Wait::Timer => timer_end,
        };
        delay.delay_ns(u32::try_from(first).unwrap_or(u32::MAX));
        let status = bus
            .read_status([COM_IRQ, ERROR, FIFO_LEVEL, CONTROL])
            .map_err(comm)?;
        if done(&status) {
            return Ok(status);
        }
        if let Wait::Answer(_) = wait {
            // The expected answer did not come in time: the timer decides.
            delay.delay_ns(u32::try_from(self.timer_ns).unwrap_or(u32::MAX));
        }
        for _ in 0..MAX_LATE_POLLS {
            let status = bus
                .read_status([COM_IRQ, ERROR, FIFO_LEVEL, CONTROL])
                .map_err(comm)?;
            if done(&status) {
                return Ok(status);
            }
            delay.delay_ns(STEP_NS);
        }
        Err(mfrc522::Error::Comm(BusError::Stuck))
    }

    fn request<S: SpiDevice, D: DelayNs>(
        &mut self,
        bus: &GuardedSpi<S>,
        delay: &mut D,
        command: u8,
    ) -> Result<[u8; 2], LeanError<S::Error>> {
        let rx = self.exchange(bus, delay, &[command], 7, 0, Wait::Timer)?;
        if rx.coll.is_some() {
            return Err(mfrc522::Error::Collision);
        }
        if rx.len != 2 || rx.last_bits != 0 {
            return Err(mfrc522::Error::IncompleteFrame);
        }
        Ok([rx.data[0], rx.data[1]])
    }

    /// REQA: cards in IDLE answer their ATQA.
    pub(crate) fn reqa<S: SpiDevice, D: DelayNs>(
        &mut self,
        bus: &GuardedSpi<S>,
        delay: &mut D,
    ) -> Result<[u8; 2], LeanError<S::Error>> {
        self.request(bus, delay, REQA)
    }

    /// WUPA: cards in IDLE or HALT answer their ATQA.
    pub(crate) fn wupa<S: SpiDevice, D: DelayNs>(
        &mut self,
        bus: &GuardedSpi<S>,
        delay: &mut D,
    ) -> Result<[u8; 2], LeanError<S::Error>> {
        self.request(bus, delay, WUPA)
    }

    /// HLTA; success is silence (ISO 14443-3: any answer within 1 ms is a "not acknowledge").
    pub(crate) fn hlta<S: SpiDevice, D: DelayNs>(
        &mut self,
        bus: &GuardedSpi<S>,
        delay: &mut D,
    ) -> Result<(), LeanError<S::Error>> {
        let crc = crc_a(&[HLTA, 0]);
        match self.exchange(bus, delay, &[HLTA, 0, crc[0], crc[1]], 0, 0, Wait::Timer) {
            Err(mfrc522::Error::Timeout) => Ok(()),
            Ok(_) => {
                self.fifo_dirty = true;
                Err(mfrc522::Error::Nak)
            }
            Err(e) => Err(e),
        }
    }

    /// The anticollision loop and SELECT for every cascade level of the card(s) that answered
    /// `atqa`; returns the UID (4, 7 or 10 bytes). Collisions are resolved as the crate does:
    /// take the known bits up to the first collision, set the collided bit to 1, ask again.
    pub(crate) fn select<S: SpiDevice, D: DelayNs>(
        &mut self,
        bus: &GuardedSpi<S>,
        delay: &mut D,
        atqa: [u8; 2],
    ) -> Result<Vec<u8>, LeanError<S::Error>> {
        // Bit frame anticollision is announced by exactly one of ATQA's bits 0..4.
        if (atqa[0] & 0x1F).count_ones() != 1 {
            return Err(mfrc522::Error::Proprietary);
        }
        let mut uid = Vec::with_capacity(10);
        for sel in SEL {
            // SEL, NVB, UID CLn (4 bytes), BCC, CRC_A (2 bytes).
            let mut tx = [0u8; 9];
            tx[0] = sel;
            let mut known: usize = 0;
            loop {
                let tx_last = (known % 8) as u8;
                let full = known / 8;
                let end = 2 + full + usize::from(tx_last > 0);
                tx[1] = (((2 + full) as u8) << 4) | tx_last;
                let frame = tx;
                let rx = self.exchange(
                    bus,
                    delay,
                    &frame[..end],
                    tx_last,
                    tx_last,
                    Wait::Answer(40 - known),
                )?;
                // The first received bit lands at bit `tx_last` of FIFO byte 0, which is byte
                // `full` of the level's UID bytes: keep our own bits below it.
                let low = (1u8 << tx_last) - 1;
                for (i, &b) in rx.data[..rx.len].iter().enumerate() {
                    let Some(slot) = tx.get_mut(2 + full + i).filter(|_| full + i < 5) else {
                        break;
                    };
                    *slot = if i == 0 {
                        (*slot & low) | (b & !low)
                    } else {
                        b
                    };
                }
                let Some(coll) = rx.coll else {
                    break;
                };
                if coll & 0x20 != 0 {
                    // CollPosNotValid: a collision beyond what CollPos can say.
                    return Err(mfrc522::Error::Collision);
                }
                let pos = match coll & 0x1F {
                    0 => 32,
                    p => usize::from(p),
                };
                // CollPos counts from the first bit position of the FIFO's first byte.
                let at = full * 8 + pos - 1;
                if at < known || at >= 40 {
                    return Err(mfrc522::Error::Collision);
                }
                let (byte, bit) = (2 + at / 8, at % 8);
                // Keep the bits before the collision, choose 1 for the collided bit.
                tx[byte] = (tx[byte] & ((1u8 << bit) - 1)) | (1 << bit);
                for b in &mut tx[byte + 1..7] {
                    *b = 0;
                }
                known = at + 1;
            }
            tx[1] = 0x70;
            tx[6] = tx[2] ^ tx[3] ^ tx[4] ^ tx[5];
            let crc = crc_a(&tx[..7]);
            tx[7] = crc[0];
            tx[8] = crc[1];
            let frame = tx;
            let rx = self.exchange(bus, delay, &frame, 0, 0, Wait::Answer(24))?;
            if rx.coll.is_some() {
                return Err(mfrc522::Error::Collision);
            }
            if rx.len != 3 || rx.last_bits != 0 {
                return Err(mfrc522::Error::IncompleteFrame);
            }
            if crc_a(&rx.data[..1]) != [rx.data[1], rx.data[2]] {
                return Err(mfrc522::Error::Crc);
            }
            let sak = rx.data[0];
            if sak & 0x04 != 0 {
                // Cascade bit: the UID goes on at the next level; byte 0 was the cascade tag.
                uid.extend_from_slice(&tx[3..6]);
            } else {
                uid.extend_from_slice(&tx[2..6]);
                return Ok(uid);
            }
        }
        // A fourth cascade level does not exist.
        Err(mfrc522::Error::Protocol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_a_matches_the_iso_14443_examples() {
        assert_eq!(crc_a(&[0x00, 0x00]), [0xA0, 0x1E]);
        assert_eq!(crc_a(&[0x50, 0x00]), [0x57, 0xCD]);
    }

    #[test]
    fn air_time_counts_start_parity_and_end_bits() {
        // REQA: 7 bits + start + end, no full byte so no parity bit.
        assert_eq!(air_ns(7), 9 * BIT_NS);
        // ATQA: 16 bits, 2 parity bits, start and end.
        assert_eq!(air_ns(16), 20 * BIT_NS);
    }
}
