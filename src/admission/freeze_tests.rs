use super::*;
use jiff::civil::date;

fn freeze(weekly: &[&str], dates: &[&str], tz: &str) -> Freeze {
    Freeze {
        name: "weekend".into(),
        repositories: vec!["octo-org/*".into()],
        environments: vec!["production".into()],
        weekly: weekly.iter().map(|w| Weekly::parse(w).unwrap()).collect(),
        dates: dates.iter().map(|d| Dated::parse(d).unwrap()).collect(),
        timezone: TimeZone::get(tz).unwrap(),
        timezone_name: tz.into(),
    }
}

fn at(tz: &str, dt: DateTime) -> Timestamp {
    dt.to_zoned(TimeZone::get(tz).unwrap()).unwrap().timestamp()
}

#[test]
fn windows_are_read_or_refused_with_the_reason() {
    assert_eq!(
        Weekly::parse("Fri 16:00 - Mon 08:00").unwrap(),
        Weekly {
            from: (Weekday::Friday, Time::constant(16, 0, 0, 0)),
            to: (Weekday::Monday, Time::constant(8, 0, 0, 0)),
        }
    );
    for bad in [
        "Fri 16:00-Mon 08:00",
        "Friday 16:00 - Mon 08:00",
        "Fri 25:00 - Mon 08:00",
        "Fri 16:00 - Mon",
        "Fri 4pm - Mon 08:00",
        "",
    ] {
        assert!(
            Weekly::parse(bad).unwrap_err().contains("DAY HH:MM"),
            "{bad}"
        );
    }
    assert!(
        Weekly::parse("Mon 08:00 - Mon 08:00")
            .unwrap_err()
            .contains("empty")
    );
    assert!(Dated::parse("2026-12-23 00:00 - 2027-01-04 08:00").is_ok());
    assert!(Dated::parse("2026-02-30 00:00 - 2027-01-04 08:00").is_err());
    assert!(
        Dated::parse("2027-01-04 08:00 - 2026-12-23 00:00")
            .unwrap_err()
            .contains("ends before it starts")
    );
}

#[test]
fn a_weekend_window_holds_from_friday_to_monday_in_its_zone() {
    let f = freeze(&["Fri 16:00 - Mon 08:00"], &[], "Europe/Berlin");
    // Friday 2026-11-27: 15:59 Berlin is before, 16:00 is in.
    let before = at("Europe/Berlin", date(2026, 11, 27).at(15, 59, 0, 0));
    let start = at("Europe/Berlin", date(2026, 11, 27).at(16, 0, 0, 0));
    let end = at("Europe/Berlin", date(2026, 11, 30).at(8, 0, 0, 0));
    assert_eq!(f.in_force(before), None);
    assert_eq!(f.next(before), Some(Window { start, end }));
    let sunday = at("Europe/Berlin", date(2026, 11, 29).at(12, 0, 0, 0));
    assert_eq!(f.in_force(sunday), Some(Window { start, end }));
    assert_eq!(f.in_force(end), None);
    // 16:00 in Berlin is 15:00 UTC in winter.
    assert_eq!(start.to_string(), "2026-11-27T15:00:00Z");
    assert_eq!(f.local(end, sunday), "Mon 08:00 CET");
    assert!(f.matches("octo-org/web", "production"));
    assert!(!f.matches("octo-org/web", "staging"));
    assert!(!f.matches("other/web", "production"));
}

#[test]
fn a_window_across_the_end_of_summer_time_is_an_hour_longer() {
    // Europe/Berlin leaves summer time on Sunday 2026-10-25 at 03:00.
    let f = freeze(&["Fri 16:00 - Mon 08:00"], &[], "Europe/Berlin");
    let saturday = at("Europe/Berlin", date(2026, 10, 24).at(12, 0, 0, 0));
    let w = f.in_force(saturday).unwrap();
    assert_eq!(w.start.to_string(), "2026-10-23T14:00:00Z"); // 16:00 CEST
    assert_eq!(w.end.to_string(), "2026-10-26T07:00:00Z"); // 08:00 CET
    assert_eq!((w.end.as_second() - w.start.as_second()) / 3600, 65);
    // And across its start (Sunday 2026-03-29, 02:00 -> 03:00), shorter.
    let saturday = at("Europe/Berlin", date(2026, 3, 28).at(12, 0, 0, 0));
    let w = f.in_force(saturday).unwrap();
    assert_eq!((w.end.as_second() - w.start.as_second()) / 3600, 63);
    // A window starting in the skipped hour starts past it.
    let gap = freeze(&["Sun 02:30 - Sun 04:00"], &[], "Europe/Berlin");
    let w = gap.next(saturday).unwrap();
    assert_eq!(w.start.to_string(), "2026-03-29T01:30:00Z"); // 03:30 CEST
    assert_eq!(w.end.to_string(), "2026-03-29T02:00:00Z");
}

#[test]
fn a_window_may_wrap_past_sunday_and_dates_hold_once() {
    let f = freeze(
        &["Sun 22:00 - Mon 02:00"],
        &["2026-12-23 00:00 - 2027-01-04 08:00"],
        "America/New_York",
    );
    let monday = at("America/New_York", date(2026, 11, 30).at(1, 0, 0, 0));
    let w = f.in_force(monday).unwrap();
    assert_eq!(
        w.start,
        at("America/New_York", date(2026, 11, 29).at(22, 0, 0, 0))
    );
    let christmas = at("America/New_York", date(2026, 12, 25).at(12, 0, 0, 0));
    let w = f.in_force(christmas).unwrap();
    assert_eq!(
        w.end,
        at("America/New_York", date(2027, 1, 4).at(8, 0, 0, 0))
    );
    assert_eq!(f.local(w.end, christmas), "Mon 2027-01-04 08:00 EST");
    let after = at("America/New_York", date(2027, 1, 4).at(9, 0, 0, 0));
    assert_eq!(f.in_force(after), None);
    // A freeze whose only window is past holds nothing, ever again.
    let past = freeze(&[], &["2026-01-01 00:00 - 2026-01-02 00:00"], "UTC");
    assert_eq!(past.next(after), None);
}
