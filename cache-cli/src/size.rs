//! Sizes and durations as people read them.

/// `1536` → `1.5 KiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A key's remaining time to live from `PTTL` (ms; -1 none, -2 gone).
pub fn ttl(pttl_ms: i64) -> String {
    match pttl_ms {
        -1 => "none".to_owned(),
        ms if ms < 0 => "expired".to_owned(),
        ms if ms < 10_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms => {
            let s = ms / 1000;
            match s {
                s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
                s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
                s => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_and_ttls_read_naturally() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(super::ttl(-1), "none");
        assert_eq!(super::ttl(2500), "2.5 s");
        assert_eq!(super::ttl(125_000), "2m05s");
        assert_eq!(super::ttl(7_260_000), "2h01m");
        assert_eq!(super::ttl(90_000_000), "1d01h");
    }
}
