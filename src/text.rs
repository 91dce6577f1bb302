//! Small text helpers shared by collectors and error paths.

/// The longest prefix of `s` that is at most `max_bytes` long and ends on a character boundary,
/// so clipping a message never splits (and panics inside) a multi-byte character.
pub fn clip(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Shortens `s` in place to at most `max_bytes`, on a character boundary.
pub fn truncate(s: &mut String, max_bytes: usize) {
    let keep = clip(s, max_bytes).len();
    s.truncate(keep);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_inside_a_multibyte_character_backs_off_to_its_start() {
        // 'é' is 2 bytes, '€' 3, '🦀' 4: cut at every byte offset, never panic.
        let s = "aé€🦀b".repeat(40);
        for max in 0..=s.len() + 1 {
            let c = clip(&s, max);
            assert!(c.len() <= max && s.starts_with(c));
            assert!(max >= s.len() || c.len() + 4 > max, "clipped too much at {max}");
        }
        let mut owned = "x".repeat(299) + "€€";
        truncate(&mut owned, 300);
        assert_eq!(owned, "x".repeat(299));
        let mut short = String::from("ok");
        truncate(&mut short, 300);
        assert_eq!(short, "ok");
    }
}
