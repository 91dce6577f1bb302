//! redline's alert-template check against promtool: every template of a hand-written corpus
//! (the Go text/template corners: trim markers, comments, strings and escapes, numbers,
//! variables and scopes, pipelines, control structures) and of a seeded random corpus is put in
//! one rule file; the templates promtool refuses must be exactly those `template::validate`
//! refuses.

use std::collections::BTreeSet;
use std::process::Command;

use redline::template::validate;

const CORPUS: &[&str] = &[
    // Accepted by both (expected).
    "Redis {{ $labels.target }} is unreachable",
    "{{ $value | humanizePercentage }}",
    "{{- $value -}}",
    "{{-3}}",
    "{{3 -}}",
    "{{ -1.5e3 }} {{ 0x1F }} {{ 1_000 }} {{ .5 }} {{ 1+2i }} {{ 0b101 }} {{ 0o17 }}",
    "{{ 'a' }} {{ '\\n' }} {{ '\\x41' }}",
    "{{ `raw\nwith newline` }}",
    "{{ \"}}\" }}",
    "{{/* comment */}}",
    "{{- /* comment */ -}}",
    "{{ if gt $value 1.0 }}a{{ else if eq $value 0.0 }}b{{ else }}c{{ end }}",
    "{{ range $i, $e := query \"up\" }}{{ $i }}{{ $e.Labels.job }}{{ break }}{{ end }}",
    "{{ range . }}{{ continue }}{{ end }}",
    "{{ with $x := $labels.queue }}{{ $x }}{{ end }}",
    "{{ $x := 1 }}{{ $x = 2 }}{{ $x }}",
    "{{ $ }} {{ $.Labels }} {{ .Foo.Bar }} {{ $labels.a.b }}",
    "{{ printf \"%d\" (len \"abc\") }} {{ (printf \"x\") | printf \"%s\" }}",
    "{{ index $labels \"a\" | toUpper }}",
    "{{ query \"up\" | first | value | humanize }}",
    "{{ define \"t\" }}x{{ end }}{{ template \"t\" . }}",
    "{{ template \"undefined\" }}",
    "{{ block \"b\" . }}x{{ end }}",
    "{{ . . }}",
    "{{ 1 2 }}",
    "{{ nil }}",
    "{{ x | }}",
    "{{ $value | }}",
    "{{ $value }}}",
    "{{ $labels.ñ }}",
    "{{ $undefined = 1 }}",
    "{{ with . }}{{ else with . }}{{ end }}",
    "{{ if true }}{{ $y := 1 }}{{ $y }}{{ end }}",
    "{{ toTime 1 }} {{ parseDuration \"1m\" }} {{ stripPort \"a:1\" }} {{ stripDomain \"a.b\" }}",
    "{{ \"\\u00e9\\U0001F600\\x41\\101\\t\" }}",
    "{{ 1. }}",
    "{{ -9223372036854775808 }} {{ 18446744073709551615 }} {{ 0777 }} {{ 089.5 }} {{ 1e5i }}",
    "{{ 0x1p-2 }} {{ 0x1F.8p1 }} {{ 1_000.5 }} {{ 0_7 }} {{ 0x_1F }}",
    // Refused (expected).
    "backlog {{ .Foo \"",
    "backlog {{ .Foo ",
    "{{ \"unterminated }}",
    "{{ 'ab' }}",
    "{{ '' }}",
    "{{ \"\\q\" }}",
    "{{ \"\\x4\" }}",
    "{{ \"\\400\" }}",
    "{{ \"\\'\" }}",
    "{{ 0x }}",
    "{{ 1__0 }}",
    "{{ 1_ }}",
    "{{ 1a }}",
    "{{3-}}",
    "{{-$value}}",
    "{{ bogus }}",
    "{{ toDuration 1 }}",
    "{{ now }}",
    "{{ $nope }}",
    "{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}",
    "{{ if true }}x",
    "x{{ end }}",
    "{{ else }}",
    "{{ if }}{{ end }}",
    "{{ if . }}{{ else }}{{ else }}{{ end }}",
    "{{ }}",
    "{{ | humanize }}",
    "{{ $value | 3 }}",
    "{{ printf | \"a\" }}",
    "{{ break }}",
    "{{ range . }}{{ else }}{{ break }}{{ end }}",
    "{{ with . }}{{ else if . }}{{ end }}",
    "{{ range $i, $e, $f := . }}{{ end }}",
    "{{ with $x, $y := . }}{{ end }}",
    "{{ range $i, 3 }}{{ end }}",
    "{{/* open }}",
    "{{/* c */ }}",
    "{{ /* not a comment */ }}",
    "{{ (humanize $value }}",
    "{{ humanize $value) }}",
    "{{ true.x }}",
    "{{ \"a\".x }}",
    "{{ .Foo. }}",
    "{{ .Foo\"x\" }}",
    "text {{{ $value }}}",
    "{{ $value := }}",
    "{{ : }}",
    "{{ end 1 }}",
    "{{ else 1 }}",
    "{{ break 1 }}",
    "{{ template }}",
    "{{ template 1 }}",
    "{{ block \"b\" }}x{{ end }}",
    "{{ define \"t\" }}x{{ end }}{{ define \"t\" }}y{{ end }}",
    "{{ define \"t\" }}x",
    "{{ if . }}{{ define \"t\" }}x{{ end }}{{ end }}",
    "{{ $value \u{1} }}",
    "{{ 1e }}",
    "{{ 08 }}",
    "{{ 089 }}",
    "{{ 99999999999999999999 }}",
    "{{ -9223372036854775809 }}",
    "{{ 0x1Fi }}",
    "{{ 0x1.8 }}",
    "{{ 0b102 }}",
];

/// Pieces the random corpus is made of.
const PIECES: &[&str] = &[
    "{{",
    "}}",
    "{{- ",
    " -}}",
    " ",
    "$value",
    "$labels",
    ".Foo",
    ".",
    "$x",
    ":=",
    "=",
    "|",
    "(",
    ")",
    "\"a\"",
    "\"",
    "`r`",
    "'c'",
    "1",
    "-2",
    "0x1F",
    "if",
    "else",
    "end",
    "range",
    "with",
    "break",
    "humanize",
    "printf",
    "bogus",
    "nil",
    "true",
    "/*",
    "*/",
    ",",
    "text",
    "define",
    "\"t\"",
    "template",
    "$labels.job",
    "\\",
    "1.5",
    "'",
    "`",
];

/// A fixed-seed generator, so a failure is reproducible.
fn random_corpus(n: usize) -> Vec<String> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |m: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % m as u64) as usize
    };
    (0..n)
        .map(|_| {
            let len = 1 + next(10);
            let mut s = String::from("{{ ");
            for _ in 0..len {
                s.push_str(PIECES[next(PIECES.len())]);
                if next(3) == 0 {
                    s.push(' ');
                }
            }
            if next(4) != 0 {
                s.push_str(" }}");
            }
            s
        })
        .collect()
}

/// Names (`T<i>`) of the alerts whose summary promtool refuses.
fn promtool_refuses(templates: &[String]) -> BTreeSet<String> {
    #[derive(serde::Serialize)]
    struct Rule {
        alert: String,
        expr: &'static str,
        annotations: std::collections::BTreeMap<&'static str, String>,
    }
    #[derive(serde::Serialize)]
    struct Group {
        name: &'static str,
        rules: Vec<Rule>,
    }
    #[derive(serde::Serialize)]
    struct File {
        groups: Vec<Group>,
    }
    let rules = templates
        .iter()
        .enumerate()
        .map(|(i, t)| Rule {
            alert: format!("T{i}"),
            expr: "up",
            annotations: [("summary", t.clone())].into_iter().collect(),
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.rules.yml");
    let text = serde_yaml_ng::to_string(&File { groups: vec![Group { name: "t", rules }] }).expect("yaml");
    std::fs::write(&path, text).expect("write");
    let out =
        Command::new("promtool").args(["check", "rules"]).arg(&path).output().expect("promtool on PATH");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let refused: BTreeSet<String> = report
        .lines()
        .filter_map(|l| l.split(", \"").nth(1)?.split('"').next().map(str::to_string))
        .collect();
    assert_eq!(out.status.success(), refused.is_empty(), "{report}");
    refused
}

fn compare(templates: &[String]) -> (usize, usize) {
    let refused = promtool_refuses(templates);
    let mut disagreements = Vec::new();
    for (i, t) in templates.iter().enumerate() {
        let promtool_ok = !refused.contains(&format!("T{i}"));
        let ours = validate(t);
        if promtool_ok != ours.is_ok() {
            disagreements.push(format!("{t:?}: promtool ok={promtool_ok}, redline: {ours:?}"));
        }
    }
    assert!(disagreements.is_empty(), "redline and promtool disagree on:\n{}", disagreements.join("\n"));
    (templates.len() - refused.len(), refused.len())
}

#[test]
fn hand_written_corpus_agrees_with_promtool() {
    let (good, bad) = compare(&CORPUS.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    // The corpus exercises both sides.
    assert!(good >= 30 && bad >= 50, "{good} accepted, {bad} refused");
}

#[test]
fn random_corpus_agrees_with_promtool() {
    let (good, bad) = compare(&random_corpus(2000));
    assert!(good >= 20 && bad >= 100, "{good} accepted, {bad} refused");
}
