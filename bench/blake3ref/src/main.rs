// SPDX-License-Identifier: MIT
//! b3ref [--num-threads N] FILE: the BLAKE3 of FILE, printed as
//! `b3sum --no-names` prints it, computed the way b3sum 1.2.0 hashes a
//! regular file: memory-mapped (memmap2) when it is 16 KiB or more, then
//! Hasher::update_rayon inside a rayon pool of N threads (default: one per
//! CPU); smaller files are read. Only the SIMD level differs from b3sum:
//! it is fixed at build time by the blake3 crate's features
//! (bench/blake3.sh builds one binary per level).
//!
//! b3ref --mem BYTES ROUNDS: the kernel alone, no I/O: one thread hashes a
//! BYTES buffer (filled once) ROUNDS times and prints the best round in GB/s
//! (bench_blake3 --mem measures weft the same way).
use std::fs::File;
use std::io::Read;

fn hash_file(path: &str) -> std::io::Result<blake3::Hash> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let mut hasher = blake3::Hasher::new();
    if meta.is_file() && meta.len() >= 16 * 1024 && meta.len() <= isize::MAX as u64 {
        let map = unsafe { memmap2::MmapOptions::new().len(meta.len() as usize).map(&file)? };
        hasher.update_rayon(&map);
    } else {
        let mut buf = vec![0u8; 65536];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    Ok(hasher.finalize())
}

fn mem_bench(bytes: usize, rounds: usize) {
    let buf: Vec<u8> = (0..bytes).map(|i| (i as u32).wrapping_mul(2654435761) as u8).collect();
    let mut best = f64::MAX;
    let mut h = blake3::Hash::from([0u8; 32]);
    for _ in 0..rounds.max(1) {
        let t = std::time::Instant::now();
        h = blake3::hash(&buf);
        let s = t.elapsed().as_secs_f64();
        if s < best {
            best = s;
        }
    }
    println!("{} {:.3}", h.to_hex(), bytes as f64 / best / 1e9);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--mem" {
        mem_bench(args[2].parse().unwrap_or(0), args[3].parse().unwrap_or(1));
        return;
    }
    let mut threads = 0usize;
    let mut path = None;
    let mut i = 1;
    while i < args.len() {
        if args[i] == "--num-threads" && i + 1 < args.len() {
            threads = args[i + 1].parse().unwrap_or(0);
            i += 2;
        } else {
            path = Some(args[i].clone());
            i += 1;
        }
    }
    let path = match path {
        Some(p) => p,
        None => {
            eprintln!("usage: b3ref [--num-threads N] FILE");
            std::process::exit(2);
        }
    };
    let mut builder = rayon::ThreadPoolBuilder::new();
    if threads > 0 {
        builder = builder.num_threads(threads);
    }
    let pool = builder.build().expect("thread pool");
    match pool.install(|| hash_file(&path)) {
        Ok(h) => println!("{}", h.to_hex()),
        Err(e) => {
            eprintln!("b3ref: {}: {}", path, e);
            std::process::exit(1);
        }
    }
}
