//! The application stand-in of the scale benchmark (bench/scale.py): one connection, a SET then a
//! GET of one small key, over and over, no pipelining, paced at a fixed rate. It measures each
//! request from the write to the last byte of its reply and prints percentiles as one JSON line.
//!
//! Plain std Rust, no crates, so it builds with `rustc -O` alone and costs little: the cost of
//! taking a timestamp is measured and printed (`clock_ns`) so the reader can see it is negligible.
//!
//! usage: appclient --port P [--seconds S] [--rate OPS_PER_S (0: as fast as it can)]
//!                  [--ops N (stop after N requests)] [--raw FILE (t_us lat_us per request)]

use std::io::{BufWriter, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Args {
    port: u16,
    seconds: f64,
    rate: f64,
    ops: u64,
    raw: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut a = Args { port: 6379, seconds: 10.0, rate: 2000.0, ops: u64::MAX, raw: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = format!("bad value for {flag}: {v}");
        match flag.as_str() {
            "--port" => a.port = v.parse().map_err(|_| bad)?,
            "--seconds" => a.seconds = v.parse().map_err(|_| bad)?,
            "--rate" => a.rate = v.parse().map_err(|_| bad)?,
            "--ops" => a.ops = v.parse().map_err(|_| bad)?,
            "--raw" => a.raw = Some(v),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(a)
}

/// A RESP command as bytes.
fn command(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one reply (simple string, error, integer or bulk string: all this client sends can get).
fn read_reply(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = &buf[..end];
            let need = match line.first() {
                Some(b'+') | Some(b':') => end + 2,
                Some(b'-') => return Err(String::from_utf8_lossy(line).into_owned()),
                Some(b'$') => {
                    let n: i64 = std::str::from_utf8(&line[1..])
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or("bad bulk length")?;
                    if n < 0 {
                        end + 2
                    } else {
                        end + 2 + n as usize + 2
                    }
                }
                _ => return Err(format!("unexpected reply {:?}", String::from_utf8_lossy(line))),
            };
            if buf.len() >= need {
                buf.drain(..need);
                return Ok(());
            }
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Median and worst cost of one `Instant::now()`, in ns.
fn clock_cost() -> (u64, u64) {
    let mut v: Vec<u64> = (0..100_000)
        .map(|_| {
            let a = Instant::now();
            let b = Instant::now();
            (b - a).as_nanos() as u64
        })
        .collect();
    v.sort_unstable();
    (percentile(&v, 0.5), *v.last().unwrap_or(&0))
}

fn run() -> Result<(), String> {
    let a = args()?;
    let (clock_p50, clock_max) = clock_cost();
    let mut conn = TcpStream::connect(("127.0.0.1", a.port)).map_err(|e| e.to_string())?;
    conn.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(8192);
    // Named so the benchmark can tell its SLOWLOG entries (there should be none) from others'.
    conn.write_all(&command(&[b"CLIENT", b"SETNAME", b"bench-app"])).map_err(|e| e.to_string())?;
    read_reply(&mut conn, &mut buf)?;
    let value = vec![b'v'; 100];
    let set = command(&[b"SET", b"bench:app:key", &value]);
    let get = command(&[b"GET", b"bench:app:key"]);

    let period = if a.rate > 0.0 { Duration::from_secs_f64(1.0 / a.rate) } else { Duration::ZERO };
    let wall_start = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let start = Instant::now();
    let stop = start + Duration::from_secs_f64(a.seconds);
    let mut next = start;
    let mut lat: Vec<u64> = Vec::with_capacity((a.rate.max(20_000.0) * a.seconds) as usize + 16);
    let mut at: Vec<u64> = Vec::with_capacity(lat.capacity());
    let mut i: u64 = 0;
    while i < a.ops {
        let now = Instant::now();
        if now >= stop {
            break;
        }
        if period > Duration::ZERO {
            if next > now {
                std::thread::sleep(next - now);
            } else if now - next > period * 10 {
                // Far behind (the machine stalled us): start a new schedule, no burst to catch up.
                next = now;
            }
            next += period;
        }
        let req = if i.is_multiple_of(2) { &set } else { &get };
        let t0 = Instant::now();
        conn.write_all(req).map_err(|e| e.to_string())?;
        read_reply(&mut conn, &mut buf)?;
        let t1 = Instant::now();
        lat.push((t1 - t0).as_nanos() as u64);
        at.push((t0 - start).as_micros() as u64);
        i += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(path) = &a.raw {
        let f = std::fs::File::create(path).map_err(|e| format!("{path}: {e}"))?;
        let mut w = BufWriter::new(f);
        writeln!(w, "# start_unix {wall_start:.6}; t_us lat_us").map_err(|e| e.to_string())?;
        for (t, l) in at.iter().zip(&lat) {
            writeln!(w, "{t} {}", l / 1000).map_err(|e| e.to_string())?;
        }
    }
    let mut sorted = lat.clone();
    sorted.sort_unstable();
    let us = |ns: u64| ns as f64 / 1000.0;
    let over = |ms: u64| sorted.iter().filter(|&&l| l > ms * 1_000_000).count();
    println!(
        "{{\"ops\":{},\"seconds\":{:.3},\"start_unix\":{:.6},\"p50_us\":{:.1},\"p90_us\":{:.1},\"p99_us\":{:.1},\
         \"p999_us\":{:.1},\"max_us\":{:.1},\"over_1ms\":{},\"over_2ms\":{},\"over_5ms\":{},\
         \"clock_ns\":{},\"clock_max_ns\":{}}}",
        sorted.len(),
        elapsed,
        wall_start,
        us(percentile(&sorted, 0.5)),
        us(percentile(&sorted, 0.9)),
        us(percentile(&sorted, 0.99)),
        us(percentile(&sorted, 0.999)),
        us(*sorted.last().unwrap_or(&0)),
        over(1),
        over(2),
        over(5),
        clock_p50,
        clock_max
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("appclient: {e}");
        std::process::exit(1);
    }
}
