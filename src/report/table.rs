//! Plain-text tables: columns padded to their widest cell, every cell on one line (a value
//! from a file or another machine cannot break the layout or carry terminal escapes).

use std::fmt::Write as _;

/// `header` and `rows` as aligned columns; the last column is not padded.
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let header = header.map(str::to_string);
    let rows: Vec<[String; N]> =
        rows.iter().map(|row| row.clone().map(|c| crate::text::one_line(&c).into_owned())).collect();
    let mut widths = [0usize; N];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn cells_stay_on_their_line() {
        let text = super::table(["A", "B"], &[["x\ny".into(), "\u{1b}[31mred".into()]]);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }
}
