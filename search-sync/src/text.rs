//! The text rules both backends share, so that a query means the same thing whichever backend
//! answers it (docs/search.md, "Documents and matching"): how text splits into words, which
//! document words a query word matches (exactly, by prefix, within its typo budget), the query
//! text sent to Meilisearch, the sort key of a title, and the HTML-escaped highlights.
//!
//! Why one module: the embedded backend filters its tantivy matches with [`word_matches`], the
//! Meilisearch backend is configured to the same rules (typo thresholds, matching strategy
//! `all`, no query operators), and both build highlights with [`highlight`] from the stored
//! text, so neither backend's markup reaches a client unescaped.

/// Splits text into lowercase alphanumeric words (what both backends match on). Everything
/// else separates words, so query operators (`"a phrase"`, `-word`) are plain separators.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The query as Meilisearch is sent it: the words of [`tokenize`] joined by spaces, so that
/// quotes and `-` (Meilisearch's phrase and negation operators) never reach it and the last
/// word is always a prefix (a trailing space would turn that off).
pub fn query_text(q: &str) -> String {
    tokenize(q).join(" ")
}

/// The key titles sort by on both backends: trimmed and lowercase (Meilisearch sorts strings
/// by their normalized facet value, which is this for the titles a catalog has).
pub fn title_key(title: &str) -> String {
    title.trim().to_lowercase()
}

/// Typos tolerated in a query word: none below 4 characters, one from 4, two from 8 (the
/// Meilisearch index is configured with the same `minWordSizeForTypos`).
pub fn typo_budget(word: &str) -> u8 {
    match word.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// Edit distance with adjacent transpositions counting one (what the Levenshtein automata of
/// tantivy and Meilisearch compute), bounded: returns `max + 1` as soon as it is exceeded.
/// With `prefix`, the distance from `query` to the closest prefix of `word`.
fn edit_distance(query: &[char], word: &[char], max: u8, prefix: bool) -> u8 {
    let over = max + 1;
    if !prefix && query.len().abs_diff(word.len()) > usize::from(max) {
        return over;
    }
    // Rows over `word`, columns over `query`: row j is the distance from query[..i] to
    // word[..j]; with `prefix` the answer is the best last column over all rows.
    let width = query.len() + 1;
    let mut before: Vec<usize> = Vec::new();
    let mut previous: Vec<usize> = (0..width).collect();
    let mut best = previous[query.len()];
    for (j, wc) in word.iter().enumerate() {
        let mut current = vec![j + 1; width];
        for (i, qc) in query.iter().enumerate() {
            let cost = usize::from(qc != wc);
            let mut d = (previous[i] + cost).min(previous[i + 1] + 1).min(current[i] + 1);
            if i > 0 && j > 0 && *qc == word[j - 1] && query[i - 1] == *wc {
                d = d.min(before[i - 1] + 1);
            }
            current[i + 1] = d;
        }
        best = best.min(current[query.len()]);
        before = std::mem::replace(&mut previous, current);
    }
    let distance = if prefix { best } else { previous[query.len()] };
    u8::try_from(distance).unwrap_or(u8::MAX).min(over)
}

/// Whether a document word matches a query word: equal, or (for the last word typed, `prefix`)
/// starting with it, or within the word's [`typo_budget`], where a typo on the first letter
/// counts as two (Meilisearch's rule: with one typo allowed the first letter must match; with
/// two, a word that differs in its first letter may differ in nothing else). For the last
/// word the typo budget applies to the prefix: `harbr` matches `harbour` on both backends.
pub fn word_matches(query_word: &str, doc_word: &str, prefix: bool) -> bool {
    if doc_word == query_word || (prefix && doc_word.starts_with(query_word)) {
        return true;
    }
    let budget = typo_budget(query_word);
    if budget == 0 {
        return false;
    }
    let query: Vec<char> = query_word.chars().collect();
    let word: Vec<char> = doc_word.chars().collect();
    let same_first = query.first() == word.first();
    let allowed = if same_first { budget } else { budget - 1 };
    allowed > 0 && edit_distance(&query, &word, allowed, prefix) <= allowed
}

/// Whether every query word matches some word of `doc_words`, the last one as a prefix (an
/// empty query matches everything).
pub fn matches_all<'a>(
    query_words: &[String],
    doc_words: impl Iterator<Item = &'a str> + Clone,
) -> bool {
    let last = query_words.len().saturating_sub(1);
    query_words.iter().enumerate().all(|(i, q)| {
        let prefix = i == last;
        doc_words.clone().any(|w| word_matches(q, w, prefix))
    })
}

/// `text` with HTML's special characters as entities.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` HTML-escaped with the words matching the query wrapped in `<em>`, or `None` when no
/// word matches. Long texts are cut to about `max_chars` around the first match.
pub fn highlight(text: &str, query_words: &[String], max_chars: usize) -> Option<String> {
    let last = query_words.len().checked_sub(1)?;
    let mut pieces: Vec<(String, bool)> = Vec::new();
    let mut word = String::new();
    let mut any = false;
    let flush = |word: &mut String, pieces: &mut Vec<(String, bool)>, any: &mut bool| {
        if word.is_empty() {
            return;
        }
        let lower = word.to_lowercase();
        let hit = query_words.iter().enumerate().any(|(i, q)| word_matches(q, &lower, i == last));
        *any |= hit;
        pieces.push((std::mem::take(word), hit));
    };
    for c in text.chars() {
        if c.is_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut pieces, &mut any);
            pieces.push((c.to_string(), false));
        }
    }
    flush(&mut word, &mut pieces, &mut any);
    if !any {
        return None;
    }
    // Window of at most `max_chars` characters starting a little before the first match.
    let first = pieces.iter().position(|(_, hit)| *hit).unwrap_or(0);
    let mut start = first;
    let mut budget = max_chars / 4;
    while start > 0 && budget > pieces[start - 1].0.chars().count() {
        budget -= pieces[start - 1].0.chars().count();
        start -= 1;
    }
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut used = 0;
    for (piece, hit) in &pieces[start..] {
        if used >= max_chars {
            out.push('…');
            break;
        }
        used += piece.chars().count();
        if *hit {
            out.push_str("<em>");
            out.push_str(&escape_html(piece));
            out.push_str("</em>");
        } else {
            out.push_str(&escape_html(piece));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_match_exactly_with_typos_and_by_prefix() {
        assert!(word_matches("monsoon", "monsoon", false));
        assert!(word_matches("monsoom", "monsoon", false), "one typo in a 7-letter word");
        assert!(!word_matches("monsun", "monsoon", false), "two typos in a 6-letter word");
        assert!(!word_matches("cat", "car", false), "short words need exact matches");
        assert!(word_matches("harbur", "harbour", false));
        assert!(word_matches("hrabour", "harbour", false), "a transposition is one typo");
        assert!(word_matches("mon", "monsoon", true));
        assert!(!word_matches("mon", "monsoon", false));
        assert_eq!(tokenize("Monsoon Run: Part-2!"), ["monsoon", "run", "part", "2"]);
    }

    #[test]
    fn a_typo_on_the_first_letter_counts_two() {
        assert!(!word_matches("xarbour", "harbour", false), "one typo allowed, on the first");
        assert!(word_matches("marbours", "harbours", false), "two allowed: the first alone");
        assert!(!word_matches("marbouts", "harbours", false), "the first and another");
        assert!(word_matches("harboyrs", "harbours", false));
        assert!(word_matches("harbpurs", "harbouts", false), "two typos, first letter right");
    }

    #[test]
    fn the_last_word_may_have_its_typos_in_the_prefix() {
        assert!(word_matches("harbr", "harbour", true), "harbr ~ harbo");
        assert!(!word_matches("harbr", "harbour", false));
        assert!(!word_matches("xarbo", "harbour", true), "first letter: two typos");
        assert!(word_matches("midnigth", "midnight", true));
        assert!(word_matches("midnigth", "midnights", true));
        assert!(!word_matches("hab", "harbour", true), "three letters: no typo");
    }

    #[test]
    fn every_word_must_match() {
        let doc = ["midnight", "harbour", "meera"];
        let q = tokenize("midnight harb");
        assert!(matches_all(&q, doc.iter().copied()));
        assert!(!matches_all(&tokenize("harbour zzzzqq"), doc.iter().copied()));
        assert!(matches_all(&tokenize("harbour -midnight"), doc.iter().copied()), "no operators");
        assert!(matches_all(&[], doc.iter().copied()));
        assert_eq!(query_text("\"midnight harbour\" -rain  "), "midnight harbour rain");
    }

    #[test]
    fn highlights_mark_matches_and_escape_html() {
        let q = tokenize("harbor");
        assert_eq!(
            highlight("Quiet <Harbour> & sea", &q, 100).unwrap(),
            "Quiet &lt;<em>Harbour</em>&gt; &amp; sea"
        );
        assert_eq!(highlight("Nothing here", &q, 100), None);
        let long = format!("{} harbour {}", "word ".repeat(100), "tail ".repeat(100));
        let cut = highlight(&long, &q, 60).unwrap();
        assert!(cut.starts_with('…') && cut.ends_with('…') && cut.contains("<em>harbour</em>"));
        assert!(cut.chars().count() < 90, "{cut}");
        let hostile = "Quokkasix <img src=x onerror=alert(1)> & Harbour";
        assert_eq!(
            highlight(hostile, &tokenize("quokkasix"), usize::MAX).unwrap(),
            "<em>Quokkasix</em> &lt;img src=x onerror=alert(1)&gt; &amp; Harbour"
        );
    }
}
