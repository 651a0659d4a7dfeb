//! Pictures as SVG, drawn on the server: how health is spread across a portfolio, who holds
//! whom at the customer, and the scores over time. Each has a text alternative and a legend,
//! and every value is also written on the page, not only drawn.

use maud::{Markup, html};
use rapport_proto::v1 as pb;

/// Bars of how many accounts have health in each band of ten points.
pub(crate) fn distribution(counts: &[u32]) -> Markup {
    let most = counts.iter().copied().max().unwrap_or(0).max(1);
    // `top` keeps room above the tallest bar for its count.
    let (width, height, bar, top) = (320.0, 90.0, 32.0, 16.0);
    let total: u32 = counts.iter().sum();
    html! {
        svg.distribution viewBox=(format!("0 {} {width} {}", -top, height + 30.0 + top)) role="img"
            aria-label=(format!("Health of {total} accounts in bands of ten points")) {
            @for (band, &count) in counts.iter().enumerate() {
                @let h = height * f64::from(count) / f64::from(most);
                @let x = band as f64 * bar;
                rect.bar x=(x + 2.0) y=(height - h) width=(bar - 4.0) height=(h) data-band=(band * 10) data-count=(count) {
                    title { (format!("health {}–{}: {count}", band * 10, band * 10 + 10)) }
                }
                text.count x=(x + bar / 2.0) y=(height - h - 3.0) text-anchor="middle" { (count) }
                text.axis x=(x + bar / 2.0) y=(height + 16.0) text-anchor="middle" { (band * 10) }
            }
        }
    }
}

/// The stance of a contact as a sign and a word, so that it never rests on colour alone.
pub(crate) fn stance(support: i32) -> (&'static str, String) {
    let class = match support {
        s if s > 0 => "stance-pos",
        s if s < 0 => "stance-neg",
        _ => "stance-zero",
    };
    // U+2212 is the minus sign; `{:+}` would give a hyphen.
    let sign = match support {
        s if s > 0 => format!("+{s}"),
        s if s < 0 => format!("\u{2212}{}", -s),
        _ => "0".to_owned(),
    };
    (class, sign)
}

/// The relationship map: our people on the left, the customer's current contacts on the right
/// grouped by department, and a line for each relationship held in the window, as thick as
/// its touches are many. A contact is coloured and signed by stance, sized by closeness, and
/// ringed when key.
pub(crate) fn relationship_map(view: &pb::AccountView) -> Markup {
    let mut people: Vec<(String, String)> = vec![(view.owner.clone(), "owner".to_owned())];
    for member in &view.team_members {
        if member.member != view.owner {
            people.push((member.member.clone(), rapport_wire::team_role_name(member.role).to_owned()));
        }
    }
    for held in &view.relationships {
        if !people.iter().any(|(p, _)| *p == held.staff) {
            people.push((held.staff.clone(), "not on the team".to_owned()));
        }
    }
    let mut contacts: Vec<&pb::ContactView> = view.contacts.iter().collect();
    contacts.sort_by(|a, b| a.department.cmp(&b.department).then_with(|| a.contact_id.cmp(&b.contact_id)));
    let (row, heading, top) = (40.0, 26.0, 20.0);
    let mut y = top;
    let mut placed: Vec<(&pb::ContactView, f64, Option<&str>)> = Vec::with_capacity(contacts.len());
    let mut department: Option<&str> = None;
    for contact in &contacts {
        let starts = department != Some(contact.department.as_str());
        if starts {
            y += heading;
            department = Some(contact.department.as_str());
        }
        placed.push((contact, y + row / 2.0, starts.then_some(contact.department.as_str())));
        y += row;
    }
    let height = (y + top).max(top * 2.0 + row * people.len() as f64);
    let spacing = (height - 2.0 * top) / people.len().max(1) as f64;
    let person_y = |i: usize| top + spacing * (i as f64 + 0.5);
    let (left, right, width) = (170.0, 520.0, 780.0);
    let contact_y = |id: &str| placed.iter().find(|(c, _, _)| c.contact_id == id).map(|(_, y, _)| *y);
    html! {
        svg.map viewBox=(format!("0 0 {width} {height}")) role="img"
            aria-label=(format!("Relationship map: {} of our people, {} contacts, {} relationships held in the last {} days",
                people.len(), contacts.len(), view.relationships.len(), view.relationship_window_days)) {
            @for held in &view.relationships {
                @if let (Some(i), Some(cy)) = (people.iter().position(|(p, _)| *p == held.staff), contact_y(&held.contact_id)) {
                    line.held x1=(left) y1=(person_y(i)) x2=(right) y2=(cy)
                        stroke-width=(format!("{:.1}", (1.0 + 1.5 * f64::from(held.touches)).min(10.0)))
                        data-staff=(held.staff) data-contact=(held.contact_id) data-touches=(held.touches) {
                        title { (held.staff) " and " (held.contact_id) ": " (held.touches) " touches, the last " (crate::pages::instant(held.last_touch.as_ref())) }
                    }
                }
            }
            @for (i, (person, role)) in people.iter().enumerate() {
                g.person data-staff=(person) {
                    rect.staff x=(left - 8.0) y=(person_y(i) - 8.0) width="16" height="16" rx="3" {}
                    text.name x=(left - 16.0) y=(person_y(i) - 1.0) text-anchor="end" { (person) }
                    text x=(left - 16.0) y=(person_y(i) + 12.0) text-anchor="end" { (role) }
                }
            }
            @for (contact, cy, starts) in &placed {
                @if let Some(department) = starts {
                    text.department x=(right - 20.0) y=(cy - row / 2.0 - 6.0) { (department) }
                }
                @let (class, sign) = stance(contact.support);
                @let r = 7.0 + 2.5 * f64::from(contact.intimacy.min(4));
                g.contact data-contact=(contact.contact_id) data-department=(contact.department)
                    data-support=(contact.support) data-intimacy=(contact.intimacy) data-key=(contact.key) {
                    @if contact.key { circle.key cx=(right) cy=(cy) r=(r + 4.0) fill="none" {} }
                    circle class=(class) cx=(right) cy=(cy) r=(r) {}
                    text.sign x=(right) y=(cy + 4.0) text-anchor="middle" { (sign) }
                    text.name x=(right + 26.0) y=(*cy + 4.0) { (contact.name) @if contact.key { " ★" } }
                }
            }
        }
        ul.legend aria-label="How to read the map" {
            li { span.swatch.stance-pos { "+" } " supports us (+1, +2)" }
            li { span.swatch.stance-zero { "0" } " neutral or not yet assessed" }
            li { span.swatch.stance-neg { "\u{2212}" } " opposes us (\u{2212}1, \u{2212}2)" }
            li { "Larger circle: closer (closeness 0 to 4)" }
            li { "Ring and ★: key contact" }
            li { "Line: touches in the last " (view.relationship_window_days) " days, thicker for more" }
            li { span.swatch.staff-swatch {} " our people: the owner, the team, and anyone else in touch" }
        }
    }
}

/// One series of the score history.
pub(crate) struct Series<'a> {
    pub label: &'a str,
    /// The class that gives its line a colour and a dash pattern of its own.
    pub class: &'a str,
    pub points: Vec<f64>,
}

/// The score history: one line per score over monthly points, 0 to 100. `months` labels the
/// points, oldest first; every series has one value per month.
pub(crate) fn score_history(months: &[String], series: &[Series<'_>]) -> Markup {
    let (width, height, left, bottom, top) = (760.0, 260.0, 36.0, 40.0, 10.0);
    let plot = height - bottom - top;
    let step = if months.len() > 1 { (width - left - 40.0) / (months.len() - 1) as f64 } else { 0.0 };
    let x = |i: usize| left + step * i as f64;
    let y = |v: f64| top + plot * (1.0 - v.clamp(0.0, 100.0) / 100.0);
    html! {
        svg.history viewBox=(format!("0 0 {width} {height}")) role="img"
            aria-label=(format!("Scores at {} monthly points, from {} to {}", months.len(),
                months.first().map_or("", String::as_str), months.last().map_or("", String::as_str))) {
            @for tick in [0.0, 25.0, 50.0, 75.0, 100.0] {
                line.grid x1=(left) x2=(width - 40.0) y1=(y(tick)) y2=(y(tick)) {}
                text x=(left - 6.0) y=(y(tick) + 4.0) text-anchor="end" { (tick) }
            }
            @for (i, month) in months.iter().enumerate() {
                @if i % 3 == 0 || i + 1 == months.len() {
                    text x=(x(i)) y=(height - bottom + 16.0) text-anchor="middle" { (month) }
                }
            }
            @for s in series {
                polyline class=(format!("series {}", s.class)) data-series=(s.label)
                    points=(s.points.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect::<Vec<_>>().join(" ")) {
                    title { (s.label) }
                }
            }
        }
        ul.legend aria-label="Lines of the score history" {
            @for s in series {
                li { svg.key-line width="28" height="10" aria-hidden="true" { line class=(format!("series {}", s.class)) x1="0" y1="5" x2="28" y2="5" {} } " " (s.label) }
            }
        }
    }
}
