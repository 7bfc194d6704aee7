//! Crontab as users write it: what parses, what the text keeps, which hour fields
//! count as every hour, and errors that name the field and what it accepts.

use super::*;

fn err(text: &str) -> String {
    Crontab::parse(text)
        .expect_err("should be refused")
        .to_string()
}

#[test]
fn five_and_six_fields_and_nicknames_parse() {
    for ok in [
        "0 9 * * 1-5",
        "0 0 9 * * 1-5",
        "*/15 * * * *",
        "30 2 1,15 * *",
        "0 9 * JAN-MAR,dec mon-fri",
        "0 9 * * FRI-SUN",
        "0 12 ? * MON",
        "@daily",
        "@Hourly",
        "@annually",
    ] {
        assert!(
            Crontab::parse(ok).is_ok(),
            "`{ok}` is crontab: {:?}",
            Crontab::parse(ok).err()
        );
    }
}

#[test]
fn the_text_is_kept_as_written() {
    let c = Crontab::parse("0 9 * * mon-fri").unwrap();
    assert_eq!(
        c.to_string(),
        "0 9 * * mon-fri",
        "shown as the user wrote it"
    );
    assert_eq!(serde_json::to_value(&c).unwrap(), "0 9 * * mon-fri");
}

#[test]
fn every_hour_is_the_hour_field_matching_all_24() {
    assert!(Crontab::parse("*/5 * * * *").unwrap().every_hour());
    assert!(Crontab::parse("0 0-23 * * *").unwrap().every_hour());
    assert!(Crontab::parse("@hourly").unwrap().every_hour());
    assert!(!Crontab::parse("0 */2 * * *").unwrap().every_hour());
    assert!(!Crontab::parse("@daily").unwrap().every_hour());
}

#[test]
fn errors_name_the_field_and_what_it_accepts() {
    let cases = [
        (
            "0 0 66 * * *",
            "hour field `66`: 66 is more than 23; hour accepts 0-23",
        ),
        (
            "0 9 * * 8",
            "day-of-week field `8`: 8 is more than 7; day-of-week accepts 0-7 (0 and 7 are Sunday) or SUN-SAT",
        ),
        ("0 9 0 * *", "day-of-month field `0`: 0 is less than 1"),
        (
            "0 9 * MON *",
            "month field `MON`: `MON` (a weekday name) is not a month value; month accepts 1-12 or JAN-DEC",
        ),
        (
            "0 9 * * JAN",
            "`JAN` (a month name) is not a day-of-week value",
        ),
        ("0 9 * * 5-1", "the range `5-1` runs backwards"),
        (
            "5/10 * * * *",
            "minute field `5/10`: a step needs a range: write `5-59/10`",
        ),
        ("*/0 * * * *", "`*/0` has a step of 0"),
        (
            "0 9 L * *",
            "day-of-month field `L`: `L` is not a day-of-month value",
        ),
        ("0 9,,10 * * *", "an empty list item"),
        ("0 9 * *", "4 fields; crontab has 5 fields"),
        ("0 0 9 * * 1-5 2026", "7 fields"),
        ("", "it is empty"),
        ("@reboot", "unknown nickname `@reboot`"),
        (
            "0 0 30 2 *",
            "it never fires: day-of-month `30` never comes in month `2`",
        ),
        ("0 0 31 4,6 *", "never fires"),
    ];
    for (text, fragment) in cases {
        let e = err(text);
        assert!(
            e.contains(fragment),
            "`{text}`: expected `{fragment}` in: {e}"
        );
    }
    assert!(
        Crontab::parse("0 0 29 2 *").is_ok(),
        "29 February comes in leap years"
    );
    assert!(
        Crontab::parse("0 0 30 2 MON").is_ok(),
        "30 OR Monday fires on Mondays"
    );
}
