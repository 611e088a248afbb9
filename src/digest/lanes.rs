//! Sixteen MD5 block compressions side by side.
//!
//! One MD5 compression is a chain of 64 dependent steps, so a single one
//! leaves most of the processor idle: this machine compresses a block in
//! about 100 ns however it is written. Sixteen independent blocks, each step
//! done for all sixteen at once on `[u32; 16]` lanes, let the compiler use
//! vector instructions throughout. Baseline x86-64 has only SSE2 (four lanes
//! per instruction, and rotation takes three), so the same code is also
//! compiled for AVX2 and for AVX-512 (sixteen lanes per instruction, and a
//! rotate instruction of its own) and the widest the processor has is
//! chosen at run time: about 12 ns per block with AVX-512 on this machine,
//! against about 30 with SSE2. Servers sign hundreds of challenges per
//! burst, so they can use it.
//!
//! The steps are RFC 1321's; `md-5`'s compression is the reference the
//! tests compare against.

pub const LANES: usize = 16;

/// Per-step additive constants (RFC 1321, section 3.4).
const K: [u32; 64] = [
    0xd76a_a478,
    0xe8c7_b756,
    0x2420_70db,
    0xc1bd_ceee,
    0xf57c_0faf,
    0x4787_c62a,
    0xa830_4613,
    0xfd46_9501,
    0x6980_98d8,
    0x8b44_f7af,
    0xffff_5bb1,
    0x895c_d7be,
    0x6b90_1122,
    0xfd98_7193,
    0xa679_438e,
    0x49b4_0821,
    0xf61e_2562,
    0xc040_b340,
    0x265e_5a51,
    0xe9b6_c7aa,
    0xd62f_105d,
    0x0244_1453,
    0xd8a1_e681,
    0xe7d3_fbc8,
    0x21e1_cde6,
    0xc337_07d6,
    0xf4d5_0d87,
    0x455a_14ed,
    0xa9e3_e905,
    0xfcef_a3f8,
    0x676f_02d9,
    0x8d2a_4c8a,
    0xfffa_3942,
    0x8771_f681,
    0x6d9d_6122,
    0xfde5_380c,
    0xa4be_ea44,
    0x4bde_cfa9,
    0xf6bb_4b60,
    0xbebf_bc70,
    0x289b_7ec6,
    0xeaa1_27fa,
    0xd4ef_3085,
    0x0488_1d05,
    0xd9d4_d039,
    0xe6db_99e5,
    0x1fa2_7cf8,
    0xc4ac_5665,
    0xf429_2244,
    0x432a_ff97,
    0xab94_23a7,
    0xfc93_a039,
    0x655b_59c3,
    0x8f0c_cc92,
    0xffef_f47d,
    0x8584_5dd1,
    0x6fa8_7e4f,
    0xfe2c_e6e0,
    0xa301_4314,
    0x4e08_11a1,
    0xf753_7e82,
    0xbd3a_f235,
    0x2ad7_d2bb,
    0xeb86_d391,
];

/// Left-rotation amounts, per round, repeating every four steps.
const ROTATE: [[u32; 4]; 4] = [
    [7, 12, 17, 22],
    [5, 9, 14, 20],
    [4, 11, 16, 23],
    [6, 10, 15, 21],
];

/// One 32-bit word in each lane.
#[derive(Clone, Copy)]
struct Word([u32; LANES]);

impl Word {
    #[inline(always)]
    fn splat(value: u32) -> Word {
        Word([value; LANES])
    }

    #[inline(always)]
    fn with(self, other: Word, op: impl Fn(u32, u32) -> u32) -> Word {
        let mut out = self.0;
        for (mine, theirs) in out.iter_mut().zip(other.0) {
            *mine = op(*mine, theirs);
        }
        Word(out)
    }

    #[inline(always)]
    fn add(self, other: Word) -> Word {
        self.with(other, u32::wrapping_add)
    }

    #[inline(always)]
    fn and(self, other: Word) -> Word {
        self.with(other, |a, b| a & b)
    }

    #[inline(always)]
    fn or(self, other: Word) -> Word {
        self.with(other, |a, b| a | b)
    }

    #[inline(always)]
    fn xor(self, other: Word) -> Word {
        self.with(other, |a, b| a ^ b)
    }

    #[inline(always)]
    fn not(self) -> Word {
        Word(self.0.map(|a| !a))
    }

    #[inline(always)]
    fn rotate_left(self, by: u32) -> Word {
        Word(self.0.map(|a| a.rotate_left(by)))
    }
}

/// MD5 states, word-major: `state[w][i]` is word `w` of lane `i`'s state.
/// Keeping each word's lanes together is what lets the compiler use vector
/// instructions throughout (gathering them from per-lane states inside the
/// loop defeats it).
pub type States = [[u32; LANES]; 4];

/// Message blocks, word-major like [`States`]: `message[w][i]` is word `w`
/// (little-endian) of lane `i`'s block.
pub type Blocks = [[u32; LANES]; 16];

/// Puts `block` into lane `lane` of `message`, word by word.
pub fn set_lane(message: &mut Blocks, lane: usize, block: &[u8; 64]) {
    for (word, bytes) in message.iter_mut().zip(block.as_chunks::<4>().0) {
        if let Some(slot) = word.get_mut(lane) {
            *slot = u32::from_le_bytes(*bytes);
        }
    }
}

/// Compresses lane `i` of `message` into lane `i` of `state`, for every
/// lane, with the widest vector instructions this processor has.
#[allow(
    unsafe_code,
    reason = "calling a function compiled for a CPU feature, once it is detected"
)]
pub fn compress(state: &mut States, message: &Blocks) {
    #[cfg(target_arch = "x86_64")]
    {
        // Both checks read a flag std caches after the first call.
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor has just been found to support AVX-512F,
            // the one feature this function is compiled for.
            return unsafe { compress_avx512(state, message) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above, for AVX2.
            return unsafe { compress_avx2(state, message) };
        }
    }
    compress_portable(state, message);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn compress_avx512(state: &mut States, message: &Blocks) {
    compress_portable(state, message);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn compress_avx2(state: &mut States, message: &Blocks) {
    compress_portable(state, message);
}

/// [`compress`] in plain Rust, inlined into each of the variants above so
/// that each is compiled for its own instruction set.
#[inline(always)]
fn compress_portable(state: &mut States, message: &Blocks) {
    let start = state.map(Word);
    let [mut a, mut b, mut c, mut d] = start;
    for step in 0..64 {
        let (mixed, index) = match step / 16 {
            0 => (d.xor(b.and(c.xor(d))), step),
            1 => (c.xor(d.and(b.xor(c))), (5 * step + 1) % 16),
            2 => (b.xor(c).xor(d), (3 * step + 5) % 16),
            _ => (c.xor(b.or(d.not())), (7 * step) % 16),
        };
        let rotate = ROTATE.get(step / 16).and_then(|round| round.get(step % 4));
        let next = a
            .add(mixed)
            .add(Word::splat(*K.get(step).expect("MD5 has 64 constants")))
            .add(Word(*message.get(index).expect("a block has 16 words")))
            .rotate_left(*rotate.expect("4 rounds of 4 rotations"))
            .add(b);
        (a, b, c, d) = (d, next, b, c);
    }
    for (word, (from, to)) in state.iter_mut().zip(start.into_iter().zip([a, b, c, d])) {
        *word = from.add(to).0;
    }
}

/// Lane `lane` of `state`, as an ordinary MD5 state.
pub fn lane(state: &States, lane: usize) -> [u32; 4] {
    state.map(|word| *word.get(lane).expect("lane is below LANES"))
}

/// Puts an ordinary MD5 state into lane `lane` of `states`.
pub fn set_state(states: &mut States, lane: usize, state: [u32; 4]) {
    for (word, value) in states.iter_mut().zip(state) {
        if let Some(slot) = word.get_mut(lane) {
            *slot = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Word-major states from sixteen ordinary ones.
    fn gather(states: [[u32; 4]; LANES]) -> States {
        let mut gathered = [[0; LANES]; 4];
        for (lane, state) in states.into_iter().enumerate() {
            set_state(&mut gathered, lane, state);
        }
        gathered
    }

    #[test]
    #[allow(unsafe_code, reason = "tests the AVX2 variant directly, once detected")]
    fn agrees_with_md5_block_by_block() {
        for seed in 0..50u32 {
            let blocks: [[u8; 64]; LANES] = std::array::from_fn(|lane| {
                std::array::from_fn(|i| (i as u32 * 31 + lane as u32 * 7 + seed * 101) as u8)
            });
            let states: [[u32; 4]; LANES] =
                std::array::from_fn(|lane| [seed, lane as u32, !seed, 0x1234_5678 ^ seed]);
            let mut expected = states;
            for (state, block) in expected.iter_mut().zip(&blocks) {
                md5::block_api::compress(state, std::slice::from_ref(block));
            }
            // The variant this processor runs, and the plain one every
            // processor can run.
            let mut message = [[0u32; LANES]; 16];
            for (lane, block) in blocks.iter().enumerate() {
                set_lane(&mut message, lane, block);
            }
            let mut side_by_side = gather(states);
            compress(&mut side_by_side, &message);
            let mut portable = gather(states);
            compress_portable(&mut portable, &message);
            let mut variants = vec![(side_by_side, "dispatched"), (portable, "portable")];
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                let mut avx2 = gather(states);
                // SAFETY: the processor has just been found to support AVX2.
                unsafe { compress_avx2(&mut avx2, &message) };
                variants.push((avx2, "avx2"));
            }
            for (variant, name) in variants {
                let states: [[u32; 4]; LANES] = std::array::from_fn(|i| lane(&variant, i));
                assert_eq!(states, expected, "{name}, seed {seed}");
            }
        }
    }
}
