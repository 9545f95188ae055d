//! MFRC522 simulator: an `embedded_hal::spi::SpiDevice` that answers the chip's SPI register
//! protocol, so the real `mfrc522` crate and [`super::rc522`] run unchanged against it in the
//! demo, the tests and the benches.
//!
//! Modelled: the register file with its reset values, the 64-byte FIFO (level, flush, overflow),
//! the commands Idle, CalcCRC, Transmit, Receive, Transceive, MFAuthent and SoftReset (plus the
//! soft power-down bit), the timer (prescaler, reload, `TAuto` start at the end of transmission,
//! stop at the first received bit), ComIrqReg/DivIrqReg with their Set1/Set2 semantics, ErrorReg
//! (CRC, parity, collision, buffer overflow), BitFramingReg (short frames, `RxAlign`), CollReg,
//! ControlReg's `RxLastBits`, TxModeReg/RxModeReg CRC enables, TxControlReg (the antenna: cards
//! lose power when it goes off), RFCfgReg and VersionReg (0x92 by default). Virtual ISO 14443A
//! cards live in [`picc`].
//!
//! Time is virtual: every SPI transaction advances a clock by its cost on a real bus
//! ([`SimOptions::spi_hz`] and a fixed per-transfer overhead), and air frames take their ISO
//! 14443A time at 106 kbit/s, so the number of status polls the driver spends waiting for an
//! answer or a timeout is what it would be on the board. [`SimHandle::set_realtime`] also makes
//! the calling thread sleep for that modelled time (for latency benchmarks).
//!
//! One choice the datasheet leaves open: `CollPos` counts from the first bit position of the
//! received frame in the FIFO, that is `RxAlign` plus the index of the first collided bit, 1-based
//! (0 stands for 32). That is what the chip can know, and it agrees with what the `mfrc522` crate
//! expects whenever the known bits of the current cascade level fit in one byte.

pub mod picc;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use embedded_hal::spi::{ErrorKind, ErrorType, Operation, SpiDevice};

use picc::{Answer, Bits, Picc, PiccState, to_bits, to_bytes};
pub use picc::{BadUidLength, VirtualCard, crc_a};

// Register addresses (MFRC522 datasheet, section 9.2).
const COMMAND: usize = 0x01;
const COM_IEN: usize = 0x02;
const DIV_IEN: usize = 0x03;
const COM_IRQ: usize = 0x04;
const DIV_IRQ: usize = 0x05;
const ERROR: usize = 0x06;
const STATUS1: usize = 0x07;
const STATUS2: usize = 0x08;
const FIFO_DATA: usize = 0x09;
const FIFO_LEVEL: usize = 0x0A;
const WATER_LEVEL: usize = 0x0B;
const CONTROL: usize = 0x0C;
const BIT_FRAMING: usize = 0x0D;
const COLL: usize = 0x0E;
const MODE: usize = 0x11;
const TX_MODE: usize = 0x12;
const RX_MODE: usize = 0x13;
const TX_CONTROL: usize = 0x14;
const CRC_RESULT_HIGH: usize = 0x21;
const CRC_RESULT_LOW: usize = 0x22;
const RF_CFG: usize = 0x26;
const T_MODE: usize = 0x2A;
const T_PRESCALER: usize = 0x2B;
const T_RELOAD_HIGH: usize = 0x2C;
const T_RELOAD_LOW: usize = 0x2D;
const T_COUNTER_HIGH: usize = 0x2E;
const T_COUNTER_LOW: usize = 0x2F;
const VERSION: usize = 0x37;

// Commands (CommandReg bits 3..0).
const CMD_IDLE: u8 = 0x0;
const CMD_MEM: u8 = 0x1;
const CMD_RANDOM_ID: u8 = 0x2;
const CMD_CALC_CRC: u8 = 0x3;
const CMD_TRANSMIT: u8 = 0x4;
const CMD_NO_CHANGE: u8 = 0x7;
const CMD_RECEIVE: u8 = 0x8;
const CMD_TRANSCEIVE: u8 = 0xC;
const CMD_MF_AUTHENT: u8 = 0xE;
const CMD_SOFT_RESET: u8 = 0xF;
const POWER_DOWN: u8 = 0x10;

// ComIrqReg bits.
const TX_IRQ: u8 = 1 << 6;
const RX_IRQ: u8 = 1 << 5;
const IDLE_IRQ: u8 = 1 << 4;
const ERR_IRQ: u8 = 1 << 1;
const TIMER_IRQ: u8 = 1 << 0;
// DivIrqReg.
const CRC_IRQ: u8 = 1 << 2;
// ErrorReg.
const PARITY_ERR: u8 = 1 << 1;
const CRC_ERR: u8 = 1 << 2;
const COLL_ERR: u8 = 1 << 3;
const BUFFER_OVFL: u8 = 1 << 4;
const WR_ERR: u8 = 1 << 7;

const FIFO_SIZE: usize = 64;
/// One bit at 106 kbit/s: 128 carrier cycles of 13.56 MHz, in nanoseconds.
const BIT_NS: u64 = 9_440;
/// Frame delay time between the reader's last bit and the card's first (ISO 14443-3, n=9).
const FDT_NS: u64 = 91_000;
/// Oscillator start-up after SoftReset (datasheet: about 37.74 µs).
const OSC_START_NS: u64 = 38_000;

/// Register reset values (MFRC522 datasheet, section 9.3); the version is patched in.
fn reset_registers(version: u8) -> [u8; 64] {
    let mut r = [0u8; 64];
    r[COMMAND] = 0x20;
    r[0x02] = 0x80;
    r[COM_IRQ] = 0x14;
    r[STATUS1] = 0x21;
    r[WATER_LEVEL] = 0x08;
    r[CONTROL] = 0x10;
    r[COLL] = 0xA0;
    r[MODE] = 0x3F;
    r[TX_CONTROL] = 0x80;
    r[0x16] = 0x10;
    r[0x17] = 0x84;
    r[0x18] = 0x84;
    r[0x19] = 0x4D;
    r[0x1C] = 0x62;
    r[0x1F] = 0xEB;
    r[CRC_RESULT_HIGH] = 0xFF;
    r[CRC_RESULT_LOW] = 0xFF;
    r[0x24] = 0x26;
    r[RF_CFG] = 0x48;
    r[0x27] = 0x88;
    r[0x28] = 0x20;
    r[0x29] = 0x20;
    r[VERSION] = version;
    r
}

/// Bus parameters of the simulated board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimOptions {
    /// SPI clock in Hz (the cost of each byte on the virtual clock).
    pub spi_hz: u32,
    /// Fixed cost of one SPI transaction (syscall, chip select), in nanoseconds.
    pub transfer_overhead_ns: u64,
    /// What VersionReg reads: 0x91 (v1.0) or 0x92 (v2.0) on a genuine chip.
    pub version: u8,
}

impl Default for SimOptions {
    fn default() -> Self {
        // A Raspberry Pi spidev ioctl costs roughly 10 µs before the first clock edge.
        SimOptions {
            spi_hz: 1_000_000,
            transfer_overhead_ns: 10_000,
            version: 0x92,
        }
    }
}

/// SPI traffic counted by the simulator (one transfer is one chip-select assertion).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpiStats {
    /// SPI transactions.
    pub transfers: u64,
    /// Bytes clocked in either direction (full duplex counts once).
    pub bytes: u64,
}

/// Identifies a card placed in the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CardId(u64);

/// Protocol state of a simulated card, as a test may want to check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardState {
    /// Powered, waiting for REQA or WUPA.
    Idle,
    /// Answered REQA/WUPA, in anticollision.
    Ready,
    /// Selected.
    Active,
    /// Halted by HLTA: only WUPA wakes it.
    Halt,
}

/// A fault to inject into the next card answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardFault {
    /// The next answer that carries a CRC_A arrives with a wrong CRC.
    Crc,
    /// The next answer arrives with a parity error.
    Parity,
}

/// What the MISO line does when the reader is unplugged or its power is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bus {
    Connected,
    /// No chip: every byte on MISO reads this value (0x00 pulled low, 0xFF floating high).
    Unplugged(u8),
    /// The bus itself fails (a spidev node that vanished with a USB-SPI bridge).
    Broken,
}

#[derive(Debug)]
struct PendingRx {
    first_bit_at: u64,
    done_at: u64,
    bits: Bits,
    collision: Option<usize>,
    parity: bool,
    has_crc: bool,
}

struct FieldCard {
    id: CardId,
    picc: Picc,
    answers_left: Option<u32>,
}

struct Chip {
    regs: [u8; 64],
    fifo: VecDeque<u8>,
    options: SimOptions,
    now_ns: u64,
    realtime: bool,
    debt_ns: u64,
    stats: SpiStats,
    bus: Bus,
    in_reset: bool,
    osc_ready_at: u64,
    rx: Option<PendingRx>,
    timer_deadline: Option<u64>,
    field_on: bool,
    cards: Vec<FieldCard>,
    next_id: u64,
    faults: VecDeque<CardFault>,
    // SPI byte-stream state inside one transaction: (register, read?).
    address: Option<(usize, bool)>,
}

impl Chip {
    fn new(options: SimOptions) -> Self {
        Chip {
            regs: reset_registers(options.version),
            fifo: VecDeque::with_capacity(FIFO_SIZE),
            options,
            now_ns: 0,
            realtime: false,
            debt_ns: 0,
            stats: SpiStats::default(),
            bus: Bus::Connected,
            in_reset: false,
            osc_ready_at: 0,
            rx: None,
            timer_deadline: None,
            field_on: false,
            cards: Vec::new(),
            next_id: 0,
            faults: VecDeque::new(),
            address: None,
        }
    }

    fn power_on_reset(&mut self) {
        self.regs = reset_registers(self.options.version);
        self.fifo.clear();
        self.rx = None;
        self.timer_deadline = None;
        self.osc_ready_at = self.now_ns + OSC_START_NS;
        self.update_field();
    }

    /// Whether the chip signals an interrupt: an enabled ComIrqReg or DivIrqReg bit is set
    /// (datasheet 9.3.1.3 and 9.3.1.4). The pin's electrical level is this, inverted when
    /// ComIEnReg's IRqInv is set (the reset value).
    fn irq_active(&self) -> bool {
        self.chip_alive()
            && ((self.regs[COM_IRQ] & self.regs[COM_IEN] & 0x7F) != 0
                || (self.regs[DIV_IRQ] & self.regs[DIV_IEN] & 0x14) != 0)
    }

    /// When the chip will next set an interrupt bit by itself (answer complete, timer).
    fn next_event_at(&self) -> Option<u64> {
        let rx = self.rx.as_ref().map(|rx| rx.done_at);
        match (self.timer_deadline, rx) {
            (Some(t), Some(r)) => Some(t.min(r)),
            (t, r) => t.or(r),
        }
    }

    fn chip_alive(&self) -> bool {
        self.bus == Bus::Connected && !self.in_reset
    }

    /// Re-evaluates whether the antenna drives a field; cards lose power (and their HALT state)
    /// when it goes off.
    fn update_field(&mut self) {
        let on = self.chip_alive()
            && self.regs[COMMAND] & POWER_DOWN == 0
            && self.regs[TX_CONTROL] & 0x03 != 0;
        if self.field_on && !on {
            for card in &mut self.cards {
                card.picc.state = PiccState::Idle;
            }
        }
        self.field_on = on;
    }

    fn advance(&mut self, ns: u64) {
        self.now_ns += ns;
        if self.realtime {
            self.debt_ns += ns;
        }
        self.resolve();
    }

    /// Delivers the answer and fires the timer when their time has come, in time order.
    fn resolve(&mut self) {
        loop {
            let rx_start = self.rx.as_ref().map(|rx| rx.first_bit_at);
            match (self.timer_deadline, rx_start) {
                (Some(deadline), start)
                    if deadline <= self.now_ns && start.is_none_or(|s| deadline < s) =>
                {
                    self.timer_deadline = None;
                    self.regs[COM_IRQ] |= TIMER_IRQ;
                }
                (deadline, Some(start)) if start <= self.now_ns => {
                    // The timer stops at the first received bit.
                    if deadline.is_some() {
                        self.timer_deadline = None;
                    }
                    let done = self.rx.as_ref().is_some_and(|rx| rx.done_at <= self.now_ns);
                    if !done {
                        return;
                    }
                    if let Some(rx) = self.rx.take() {
                        self.deliver(rx);
                    }
                }
                _ => return,
            }
        }
    }

    fn deliver(&mut self, rx: PendingRx) {
        let align = usize::from((self.regs[BIT_FRAMING] >> 4) & 0x07);
        let mut bits = vec![false; align];
        let mut error = 0u8;
        match rx.collision {
            Some(c) => {
                let keep_after = self.regs[COLL] & 0x80 != 0;
                bits.extend(rx.bits.iter().enumerate().map(|(i, &b)| {
                    if i < c || (keep_after && i > c) {
                        b
                    } else {
                        false
                    }
                }));
                let pos = align + c + 1;
                self.regs[COLL] =
                    (self.regs[COLL] & 0x80) | if pos <= 32 { (pos % 32) as u8 } else { 0x20 };
                error |= COLL_ERR;
            }
            None => {
                bits.extend_from_slice(&rx.bits);
                self.regs[COLL] = (self.regs[COLL] & 0x80) | 0x20;
            }
        }
        if rx.parity {
            error |= PARITY_ERR;
        }
        let mut bytes = to_bytes(&bits);
        let last_bits = (bits.len() % 8) as u8;
        if self.regs[RX_MODE] & 0x80 != 0 && rx.has_crc && rx.collision.is_none() {
            let n = bytes.len();
            let preset = self.crc_preset();
            if n < 3
                || picc::crc16(&bytes[..n - 2], preset).to_le_bytes()
                    != [bytes[n - 2], bytes[n - 1]]
            {
                error |= CRC_ERR;
            } else {
                bytes.truncate(n - 2);
            }
        }
        for byte in bytes {
            if self.fifo.len() == FIFO_SIZE {
                error |= BUFFER_OVFL;
                break;
            }
            self.fifo.push_back(byte);
        }
        self.regs[CONTROL] = (self.regs[CONTROL] & 0xF8) | last_bits;
        self.regs[ERROR] |= error;
        self.regs[COM_IRQ] |= RX_IRQ | if error != 0 { ERR_IRQ } else { 0 };
    }

    fn crc_preset(&self) -> u16 {
        match self.regs[MODE] & 0x03 {
            0 => 0x0000,
            1 => 0x6363,
            2 => 0xA671,
            _ => 0xFFFF,
        }
    }

    fn timer_period_ns(&self) -> u64 {
        let prescaler =
            (u64::from(self.regs[T_MODE] & 0x0F) << 8) | u64::from(self.regs[T_PRESCALER]);
        let reload =
            (u64::from(self.regs[T_RELOAD_HIGH]) << 8) | u64::from(self.regs[T_RELOAD_LOW]);
        // f_timer = 13.56 MHz / (2 * prescaler + 1); the timer counts reload + 1 ticks.
        (2 * prescaler + 1) * (reload + 1) * 1_000_000_000 / 13_560_000
    }

    fn air_ns(bits: usize) -> u64 {
        // Start of frame, data with one parity bit per byte, end of frame.
        (bits as u64 + bits as u64 / 8 + 2) * BIT_NS
    }

    fn read_register(&mut self, reg: usize) -> u8 {
        match reg {
            COMMAND => {
                let powering_up = if self.now_ns < self.osc_ready_at {
                    POWER_DOWN
                } else {
                    0
                };
                self.regs[COMMAND] | powering_up
            }
            COM_IRQ => self.regs[COM_IRQ] & 0x7F,
            DIV_IRQ => self.regs[DIV_IRQ] & 0x7F,
            STATUS1 => {
                let level = self.fifo.len() as u8;
                let water = self.regs[WATER_LEVEL];
                let irq = (self.regs[COM_IRQ] & self.regs[0x02] & 0x7F) != 0;
                (self.regs[STATUS1] & 0x60)
                    | (u8::from(irq) << 4)
                    | (u8::from(self.timer_deadline.is_some()) << 3)
                    | (u8::from(FIFO_SIZE as u8 - level <= water) << 1)
                    | u8::from(level <= water)
            }
            FIFO_DATA => self.fifo.pop_front().unwrap_or(0),
            FIFO_LEVEL => self.fifo.len() as u8,
            T_COUNTER_HIGH | T_COUNTER_LOW => {
                let reload =
                    (u16::from(self.regs[T_RELOAD_HIGH]) << 8) | u16::from(self.regs[T_RELOAD_LOW]);
                let value = match self.timer_deadline {
                    Some(deadline) => {
                        let period = self.timer_period_ns().max(1);
                        let left = deadline.saturating_sub(self.now_ns);
                        (u64::from(reload) * left / period) as u16
                    }
                    None => reload,
                };
                if reg == T_COUNTER_HIGH {
                    (value >> 8) as u8
                } else {
                    value as u8
                }
            }
            _ => self.regs[reg],
        }
    }

    fn write_register(&mut self, reg: usize, value: u8) {
        match reg {
            COMMAND => {
                let command = value & 0x0F;
                let keep = if command == CMD_NO_CHANGE {
                    self.regs[COMMAND] & 0x0F
                } else {
                    command
                };
                self.regs[COMMAND] = (value & 0x30) | keep;
                if command != CMD_NO_CHANGE {
                    self.execute(command);
                }
                self.update_field();
            }
            COM_IRQ | DIV_IRQ => {
                if value & 0x80 != 0 {
                    self.regs[reg] |= value & 0x7F;
                } else {
                    self.regs[reg] &= !(value & 0x7F);
                }
            }
            ERROR | STATUS1 | FIFO_LEVEL | VERSION | T_COUNTER_HIGH | T_COUNTER_LOW => {
                if reg == FIFO_LEVEL && value & 0x80 != 0 {
                    self.fifo.clear();
                    self.regs[ERROR] &= !BUFFER_OVFL;
                }
            }
            STATUS2 => self.regs[STATUS2] = (self.regs[STATUS2] & 0x07) | (value & 0xC8),
            FIFO_DATA => {
                if self.fifo.len() == FIFO_SIZE {
                    self.regs[ERROR] |= BUFFER_OVFL;
                } else {
                    if self.regs[COMMAND] & 0x0F == CMD_MF_AUTHENT {
                        self.regs[ERROR] |= WR_ERR;
                    }
                    self.fifo.push_back(value);
                }
            }
            CONTROL => {
                if value & 0x80 != 0 {
                    self.timer_deadline = None;
                }
                if value & 0x40 != 0 {
                    self.timer_deadline = Some(self.now_ns + self.timer_period_ns());
                }
            }
            BIT_FRAMING => {
                self.regs[BIT_FRAMING] = value;
                if value & 0x80 != 0 && self.regs[COMMAND] & 0x0F == CMD_TRANSCEIVE {
                    self.transmit(true);
                }
            }
            COLL => self.regs[COLL] = (self.regs[COLL] & 0x7F) | (value & 0x80),
            TX_CONTROL => {
                self.regs[TX_CONTROL] = value;
                self.update_field();
            }
            _ => self.regs[reg] = value,
        }
    }

    fn execute(&mut self, command: u8) {
        match command {
            CMD_IDLE => self.rx = None,
            CMD_MEM | CMD_RANDOM_ID => {
                self.regs[COMMAND] &= 0xF0;
                self.regs[COM_IRQ] |= IDLE_IRQ;
            }
            CMD_CALC_CRC => {
                let data: Vec<u8> = self.fifo.drain(..).collect();
                let crc = picc::crc16(&data, self.crc_preset());
                self.regs[CRC_RESULT_LOW] = crc as u8;
                self.regs[CRC_RESULT_HIGH] = (crc >> 8) as u8;
                self.regs[DIV_IRQ] |= CRC_IRQ;
                self.regs[STATUS1] |= 0x20;
            }
            CMD_TRANSMIT => self.transmit(false),
            CMD_RECEIVE | CMD_TRANSCEIVE => {}
            CMD_MF_AUTHENT => self.authenticate(),
            CMD_SOFT_RESET => {
                self.power_on_reset();
            }
            _ => {}
        }
    }

    fn take_fault(&mut self, wanted: CardFault) -> bool {
        if self.faults.front() == Some(&wanted) {
            self.faults.pop_front();
            true
        } else {
            false
        }
    }

    fn transmit(&mut self, receive: bool) {
        let tx_last = self.regs[BIT_FRAMING] & 0x07;
        let mut bytes: Vec<u8> = self.fifo.drain(..).collect();
        if self.regs[TX_MODE] & 0x80 != 0 {
            let crc = picc::crc16(&bytes, self.crc_preset()).to_le_bytes();
            bytes.extend_from_slice(&crc);
        }
        let frame = if bytes.is_empty() {
            Vec::new()
        } else {
            to_bits(&bytes, tx_last)
        };
        self.regs[ERROR] &= BUFFER_OVFL;
        self.regs[COLL] |= 0x20;
        self.regs[COM_IRQ] |= TX_IRQ;
        let tx_end = self.now_ns + Self::air_ns(frame.len());
        if self.regs[T_MODE] & 0x80 != 0 {
            self.timer_deadline = Some(tx_end + self.timer_period_ns());
        }
        if !receive {
            self.regs[COMMAND] &= 0xF0;
            self.regs[COM_IRQ] |= IDLE_IRQ;
        }
        if !self.field_on || frame.is_empty() {
            return;
        }
        let mut answers: Vec<Answer> = Vec::new();
        let mut leaving = Vec::new();
        for card in &mut self.cards {
            if let Some(answer) = card.picc.receive(&frame) {
                answers.push(answer);
                if let Some(left) = card.answers_left.as_mut() {
                    *left = left.saturating_sub(1);
                    if *left == 0 {
                        leaving.push(card.id);
                    }
                }
            }
        }
        self.cards.retain(|c| !leaving.contains(&c.id));
        if !receive || answers.is_empty() {
            return;
        }
        let len = answers.iter().map(|a| a.bits.len()).max().unwrap_or(0);
        let shortest = answers.iter().map(|a| a.bits.len()).min().unwrap_or(0);
        let mut bits = answers[0].bits.clone();
        bits.resize(len, false);
        let mut collision = None;
        for i in 0..len {
            let differ = i >= shortest || answers.iter().any(|a| a.bits[i] != answers[0].bits[i]);
            if differ {
                collision = Some(i);
                break;
            }
        }
        let has_crc = answers.iter().all(|a| a.has_crc);
        if has_crc && collision.is_none() && self.take_fault(CardFault::Crc) {
            let n = bits.len();
            for bit in &mut bits[n - 8..] {
                *bit = !*bit;
            }
        }
        let parity = self.take_fault(CardFault::Parity);
        let first_bit_at = tx_end + FDT_NS;
        self.rx = Some(PendingRx {
            first_bit_at,
            done_at: first_bit_at + Self::air_ns(len),
            bits,
            collision,
            parity,
            has_crc,
        });
    }

    fn authenticate(&mut self) {
        let data: Vec<u8> = self.fifo.drain(..).collect();
        let tx_end = self.now_ns + Self::air_ns(4 * 9);
        if self.regs[T_MODE] & 0x80 != 0 {
            self.timer_deadline = Some(tx_end + self.timer_period_ns());
        }
        if data.len() != 12 || !self.field_on {
            return;
        }
        let ok = self
            .cards
            .iter_mut()
            .filter(|c| matches!(c.picc.state, PiccState::Active { .. }))
            .any(|c| c.picc.authenticate(data[0], &data[2..8], &data[8..12]));
        if ok {
            // Authentication takes three air exchanges; report completion right away.
            self.timer_deadline = None;
            self.regs[STATUS2] |= 0x08;
            self.regs[COMMAND] &= 0xF0;
            self.regs[COM_IRQ] |= IDLE_IRQ;
        }
    }

    /// One byte on the bus: the SPI address/data protocol of datasheet section 8.1.2.
    fn clock_byte(&mut self, mosi: u8) -> u8 {
        match self.bus {
            Bus::Unplugged(miso) => return miso,
            Bus::Broken => return 0,
            Bus::Connected if self.in_reset => return 0,
            Bus::Connected => {}
        }
        match self.address {
            None => {
                self.address = Some((usize::from((mosi >> 1) & 0x3F), mosi & 0x80 != 0));
                0
            }
            Some((reg, true)) => {
                let value = self.read_register(reg);
                // In a read, every further byte is the next address (the last one is 0x00).
                self.address = Some((usize::from((mosi >> 1) & 0x3F), true));
                value
            }
            Some((reg, false)) => {
                self.write_register(reg, mosi);
                0
            }
        }
    }
}

/// Errors of the simulated bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SimBusError {
    /// The test made the bus fail, as a spidev node that vanished would.
    #[error("simulated spi bus failure (the spidev node is gone)")]
    Broken,
}

impl embedded_hal::spi::Error for SimBusError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

fn lock(shared: &Mutex<Chip>) -> MutexGuard<'_, Chip> {
    // A panic in another holder leaves plain register data behind; keep simulating.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The simulated chip on its SPI bus: give it to the driver as its `SpiDevice`.
pub struct Mfrc522Sim {
    shared: Arc<Mutex<Chip>>,
}

impl Default for Mfrc522Sim {
    fn default() -> Self {
        Self::new(SimOptions::default())
    }
}

impl Mfrc522Sim {
    /// A powered chip with an empty field.
    pub fn new(options: SimOptions) -> Self {
        let mut chip = Chip::new(options);
        chip.power_on_reset();
        Mfrc522Sim {
            shared: Arc::new(Mutex::new(chip)),
        }
    }

    /// The control panel for this chip (cards, faults, counters); cheap to clone.
    pub fn handle(&self) -> SimHandle {
        SimHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// A `DelayNs` that advances the virtual clock instead of sleeping.
    pub fn delay(&self) -> SimDelay {
        SimDelay {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The chip's IRQ output, as a GPIO input the driver can wait on.
    pub fn irq_line(&self) -> SimIrqLine {
        SimIrqLine {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The chip's NRSTPD line: low holds it in hard power-down, the rising edge resets it.
    pub fn reset_pin(&self) -> SimResetPin {
        SimResetPin {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl ErrorType for Mfrc522Sim {
    type Error = SimBusError;
}

impl SpiDevice for Mfrc522Sim {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), SimBusError> {
        let sleep_for = {
            let mut chip = lock(&self.shared);
            if chip.bus == Bus::Broken {
                return Err(SimBusError::Broken);
            }
            let bytes: usize = operations
                .iter()
                .map(|op| match op {
                    Operation::Read(b) => b.len(),
                    Operation::Write(b) => b.len(),
                    Operation::Transfer(r, w) => r.len().max(w.len()),
                    Operation::TransferInPlace(b) => b.len(),
                    Operation::DelayNs(_) => 0,
                })
                .sum();
            chip.stats.transfers += 1;
            chip.stats.bytes += bytes as u64;
            let cost = chip.options.transfer_overhead_ns
                + bytes as u64 * 8 * 1_000_000_000 / u64::from(chip.options.spi_hz.max(1));
            chip.advance(cost);
            chip.address = None;
            for op in operations.iter_mut() {
                match op {
                    Operation::Read(buf) => {
                        for b in buf.iter_mut() {
                            *b = chip.clock_byte(0);
                        }
                    }
                    Operation::Write(buf) => {
                        for &b in buf.iter() {
                            chip.clock_byte(b);
                        }
                    }
                    Operation::Transfer(read, write) => {
                        for i in 0..read.len().max(write.len()) {
                            let miso = chip.clock_byte(write.get(i).copied().unwrap_or(0));
                            if let Some(r) = read.get_mut(i) {
                                *r = miso;
                            }
                        }
                    }
                    Operation::TransferInPlace(buf) => {
                        for b in buf.iter_mut() {
                            *b = chip.clock_byte(*b);
                        }
                    }
                    Operation::DelayNs(ns) => chip.advance(u64::from(*ns)),
                }
            }
            chip.address = None;
            take_debt(&mut chip)
        };
        if let Some(d) = sleep_for {
            std::thread::sleep(d);
        }
        Ok(())
    }
}

fn take_debt(chip: &mut Chip) -> Option<Duration> {
    // Sleep in slices of at least 200 µs: thread::sleep is too coarse for single transfers.
    if chip.realtime && chip.debt_ns >= 200_000 {
        let d = Duration::from_nanos(chip.debt_ns);
        chip.debt_ns = 0;
        Some(d)
    } else {
        None
    }
}

/// `embedded_hal::delay::DelayNs` for the simulator: advances the virtual clock, never sleeps
/// (unless the handle asked for real time).
pub struct SimDelay {
    shared: Arc<Mutex<Chip>>,
}

impl embedded_hal::delay::DelayNs for SimDelay {
    fn delay_ns(&mut self, ns: u32) {
        let sleep_for = {
            let mut chip = lock(&self.shared);
            chip.advance(u64::from(ns));
            take_debt(&mut chip)
        };
        if let Some(d) = sleep_for {
            std::thread::sleep(d);
        }
    }
}

/// The simulated IRQ pin, wired to a GPIO input: the chip drives it while an interrupt enabled in
/// ComIEnReg/DivIEnReg is pending. Waiting on it moves the virtual clock to the moment the chip
/// raises it (an answer complete, the timer expiring), as an edge event on a GPIO character
/// device wakes the driver on a board.
pub struct SimIrqLine {
    shared: Arc<Mutex<Chip>>,
}

impl SimIrqLine {
    /// The pin's electrical level: low while an interrupt is pending with IRqInv set.
    pub fn is_low(&self) -> bool {
        let chip = lock(&self.shared);
        let inverted = chip.regs[COM_IEN] & 0x80 != 0;
        chip.irq_active() == inverted
    }
}

impl crate::card::lean::IrqLine for SimIrqLine {
    fn wait(&mut self, timeout: Duration) -> Result<bool, String> {
        let sleep_for = {
            let mut chip = lock(&self.shared);
            let deadline = chip.now_ns + u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            while !chip.irq_active() && chip.now_ns < deadline {
                let next = chip.next_event_at().map_or(deadline, |at| at.min(deadline));
                let step = next.saturating_sub(chip.now_ns).max(1);
                chip.advance(step);
            }
            (chip.irq_active(), take_debt(&mut chip))
        };
        if let Some(d) = sleep_for.1 {
            std::thread::sleep(d);
        }
        Ok(sleep_for.0)
    }
}

/// The simulated NRSTPD (reset / power-down) line.
pub struct SimResetPin {
    shared: Arc<Mutex<Chip>>,
}

impl embedded_hal::digital::ErrorType for SimResetPin {
    type Error = std::convert::Infallible;
}

impl embedded_hal::digital::OutputPin for SimResetPin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        let mut chip = lock(&self.shared);
        chip.in_reset = true;
        chip.update_field();
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        let mut chip = lock(&self.shared);
        if chip.in_reset {
            chip.in_reset = false;
            chip.power_on_reset();
        }
        Ok(())
    }
}

/// Control panel of a simulated reader: place and remove cards, inject faults, unplug the reader,
/// read the SPI counters. Clones share the same chip; usable from any thread while the driver
/// polls.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Mutex<Chip>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimHandle")
    }
}

impl SimHandle {
    fn chip(&self) -> MutexGuard<'_, Chip> {
        lock(&self.shared)
    }

    /// Puts a card into the field; it powers up in IDLE.
    pub fn place(&self, card: VirtualCard) -> CardId {
        let mut chip = self.chip();
        let id = CardId(chip.next_id);
        chip.next_id += 1;
        chip.cards.push(FieldCard {
            id,
            picc: Picc::new(card),
            answers_left: None,
        });
        id
    }

    /// Takes a card out of the field; false if it was not there.
    pub fn remove(&self, id: CardId) -> bool {
        let mut chip = self.chip();
        let before = chip.cards.len();
        chip.cards.retain(|c| c.id != id);
        chip.cards.len() != before
    }

    /// Takes every card out of the field.
    pub fn remove_all(&self) {
        self.chip().cards.clear();
    }

    /// The card leaves the field right after its next `answers` answers (a card pulled away in
    /// the middle of a read).
    pub fn remove_after_answers(&self, id: CardId, answers: u32) {
        let mut chip = self.chip();
        if answers == 0 {
            chip.cards.retain(|c| c.id != id);
        } else if let Some(card) = chip.cards.iter_mut().find(|c| c.id == id) {
            card.answers_left = Some(answers);
        }
    }

    /// Whether the card is still in the field.
    pub fn in_field(&self, id: CardId) -> bool {
        self.chip().cards.iter().any(|c| c.id == id)
    }

    /// The protocol state of a card in the field.
    pub fn card_state(&self, id: CardId) -> Option<CardState> {
        self.chip()
            .cards
            .iter()
            .find(|c| c.id == id)
            .map(|c| match c.picc.state {
                PiccState::Idle => CardState::Idle,
                PiccState::Ready { .. } => CardState::Ready,
                PiccState::Active { .. } => CardState::Active,
                PiccState::Halt => CardState::Halt,
            })
    }

    /// Queues a fault for the next card answers.
    pub fn inject(&self, fault: CardFault) {
        self.chip().faults.push_back(fault);
    }

    /// Faults queued and not yet delivered.
    pub fn pending_faults(&self) -> usize {
        self.chip().faults.len()
    }

    /// Disconnects the reader: the chip loses power and every byte on MISO reads `miso`
    /// (0x00 when the line is pulled low, 0xFF when it floats high).
    pub fn unplug(&self, miso: u8) {
        let mut chip = self.chip();
        chip.bus = Bus::Unplugged(miso);
        chip.update_field();
    }

    /// Makes the SPI bus itself fail (every transaction returns an error).
    pub fn break_bus(&self) {
        let mut chip = self.chip();
        chip.bus = Bus::Broken;
        chip.update_field();
    }

    /// Reconnects the reader (or repairs the bus): the chip powers up with reset values.
    pub fn plug_in(&self) {
        let mut chip = self.chip();
        if chip.bus != Bus::Connected {
            chip.bus = Bus::Connected;
            chip.power_on_reset();
        }
    }

    /// A brown-out: the chip restarts with reset values (antenna off) while the host keeps going.
    pub fn power_glitch(&self) {
        self.chip().power_on_reset();
    }

    /// What VersionReg reads from now on (0x91/0x92 genuine, 0x88/0x12/0xB2 common clones).
    pub fn set_version(&self, version: u8) {
        let mut chip = self.chip();
        chip.options.version = version;
        chip.regs[VERSION] = version;
    }

    /// SPI traffic since the start or the last [`SimHandle::reset_spi_stats`].
    pub fn spi_stats(&self) -> SpiStats {
        self.chip().stats
    }

    /// Zeroes the SPI counters.
    pub fn reset_spi_stats(&self) {
        self.chip().stats = SpiStats::default();
    }

    /// The virtual clock: modelled time spent on the bus and on the air.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.chip().now_ns)
    }

    /// Whether the calling threads also sleep for the modelled bus and air time.
    pub fn set_realtime(&self, realtime: bool) {
        let mut chip = self.chip();
        chip.realtime = realtime;
        chip.debt_ns = 0;
    }

    /// Whether the antenna drives a field.
    pub fn antenna_on(&self) -> bool {
        self.chip().field_on
    }

    /// Receiver gain bits of RFCfgReg (bits 6..4), as the datasheet codes them.
    pub fn rx_gain_bits(&self) -> u8 {
        (self.chip().regs[RF_CFG] >> 4) & 0x07
    }

    /// Reads a register directly (no SPI traffic counted), for tests.
    pub fn peek(&self, register: u8) -> u8 {
        let mut chip = self.chip();
        let reg = usize::from(register & 0x3F);
        if reg == FIFO_DATA {
            chip.fifo.front().copied().unwrap_or(0)
        } else {
            chip.read_register(reg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfrc522::Mfrc522;
    use mfrc522::comm::blocking::spi::SpiInterface;

    #[test]
    fn unmodified_crate_reads_a_four_byte_uid() {
        let sim = Mfrc522Sim::default();
        let handle = sim.handle();
        handle.place(VirtualCard::new(&[0xDE, 0xAD, 0xBE, 0xEF]).unwrap());
        let mut chip = Mfrc522::new(SpiInterface::new(sim)).init().unwrap();
        assert_eq!(chip.version().unwrap(), 0x92);
        let atqa = chip.reqa().unwrap();
        let uid = chip.select(&atqa).unwrap();
        assert_eq!(uid.as_bytes(), &[0xDE, 0xAD, 0xBE, 0xEF]);
        chip.hlta().unwrap();
        assert!(handle.spi_stats().transfers > 0);
    }

    fn write(sim: &mut Mfrc522Sim, reg: usize, value: u8) {
        sim.write(&[(reg as u8) << 1, value]).unwrap();
    }

    /// REQA into an empty field with the 1 ms timer running, interrupts enabled as `com_ien`.
    fn reqa_with_interrupts(com_ien: u8) -> (Mfrc522Sim, SimIrqLine) {
        let mut sim = Mfrc522Sim::default();
        let line = sim.irq_line();
        write(&mut sim, T_MODE, 0x80);
        write(&mut sim, T_PRESCALER, 0xA9);
        write(&mut sim, T_RELOAD_LOW, 40);
        write(&mut sim, TX_CONTROL, 0x83);
        write(&mut sim, COM_IEN, com_ien);
        write(&mut sim, FIFO_DATA, 0x26);
        write(&mut sim, COMMAND, CMD_TRANSCEIVE);
        write(&mut sim, BIT_FRAMING, 0x87);
        (sim, line)
    }

    #[test]
    fn irq_line_goes_low_when_an_enabled_interrupt_is_pending_and_high_once_cleared() {
        use crate::card::lean::IrqLine;
        let (mut sim, mut line) = reqa_with_interrupts(0x80 | TIMER_IRQ);
        assert!(!line.is_low(), "nothing pending yet");
        let before = sim.handle().now();
        assert!(line.wait(Duration::from_millis(5)).unwrap());
        let waited = sim.handle().now() - before;
        assert!(
            waited >= Duration::from_micros(1025) && waited < Duration::from_micros(1200),
            "the line rose when the timer expired, not before: {waited:?}"
        );
        assert!(line.is_low());
        write(&mut sim, COM_IRQ, 0x7F);
        assert!(!line.is_low(), "clearing ComIrqReg releases the line");
    }

    #[test]
    fn irq_line_stays_quiet_for_interrupts_that_are_not_enabled() {
        use crate::card::lean::IrqLine;
        let (sim, mut line) = reqa_with_interrupts(0x80);
        assert!(!line.wait(Duration::from_millis(5)).unwrap());
        assert!(!line.is_low());
        assert_ne!(
            sim.handle().peek(COM_IRQ as u8) & TIMER_IRQ,
            0,
            "the timer did expire"
        );
    }

    #[test]
    fn empty_field_times_out_through_the_timer() {
        let sim = Mfrc522Sim::default();
        let mut chip = Mfrc522::new(SpiInterface::new(sim)).init().unwrap();
        assert!(matches!(chip.reqa(), Err(mfrc522::Error::Timeout)));
    }
}
