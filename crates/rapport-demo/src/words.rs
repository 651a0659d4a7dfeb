//! The vocabulary of the generated events.

pub(crate) const FIRST_NAMES: &[&str] = &[
    "Katrin", "Marco", "Sofia", "Jonas", "Mei", "Ravi", "Elena", "Tomasz", "Aiko", "Lars", "Fatima", "Pedro", "Ingrid",
    "Chen", "Olivia", "Kenji", "Amara", "Lukas", "Yara", "Henrik",
];

pub(crate) const LAST_NAMES: &[&str] = &[
    "Hartmann",
    "Rossi",
    "Lindqvist",
    "Weber",
    "Zhang",
    "Iyer",
    "Petrova",
    "Nowak",
    "Tanaka",
    "Berg",
    "Haddad",
    "Costa",
    "Solberg",
    "Liu",
    "Brown",
    "Sato",
    "Okafor",
    "Meyer",
    "Cohen",
    "Dahl",
];

/// (department, titles there).
pub(crate) const DEPARTMENTS: &[(&str, &[&str])] = &[
    ("Procurement", &["Head of Procurement", "Category Manager", "Buyer"]),
    ("IT", &["CIO", "Head of Infrastructure", "Enterprise Architect", "IT Manager"]),
    ("Finance", &["CFO", "Controller", "Finance Manager"]),
    ("Operations", &["COO", "Plant Manager", "Operations Lead"]),
    ("R&D", &["CTO", "Head of R&D", "Lead Engineer"]),
    ("Executive Board", &["CEO", "Board Member"]),
    ("Legal", &["General Counsel", "Compliance Officer"]),
];

pub(crate) const STAFF: &[&str] = &[
    "li.wei",
    "anna.berg",
    "sam.lee",
    "ola.nord",
    "maria.santos",
    "tom.keller",
    "yuki.mori",
    "ben.adams",
    "nina.frost",
    "omar.rahim",
];

pub(crate) const SOURCES: &[&str] = &["crm", "calendar-sync", "expense-system", "hr-system"];

pub(crate) const TOPICS: &[&str] = &[
    "Quarterly business review",
    "Roadmap briefing",
    "Renewal terms",
    "Pilot results",
    "Security review",
    "Integration workshop",
    "Escalation follow-up",
    "Capacity planning",
    "Sustainability targets",
    "Executive alignment",
];

pub(crate) const NOTE_SENTENCES: &[&str] = &[
    "They are under pressure to cut logistics costs by ten percent this year.",
    "The CIO asked for references from two customers in their industry.",
    "Procurement wants a three-year price lock before they consider the expansion.",
    "Their current vendor missed two delivery dates last quarter, which opened the door for us.",
    "We walked through the migration plan; the operations team worried about downtime during peak season.",
    "Finance will only approve the budget after the board meeting in the spring.",
    "The pilot met its targets in two of three plants; the third has a network problem on their side.",
    "They liked the support model but want a named engineer on site during go-live.",
    "A competitor offered a steep discount; the decision maker said price is not the only criterion.",
    "We agreed to prepare a total cost of ownership comparison before the next meeting.",
    "Their new compliance officer wants to review our data processing agreement.",
    "Good energy in the room; they invited us to their supplier day in June.",
];

pub(crate) const GIFTS: &[(&str, i64)] = &[
    ("Book on supply chain strategy", 3_500),
    ("Dinner after the site visit", 18_000),
    ("Conference ticket", 95_000),
    ("Company calendar and tea set", 4_000),
    ("Wine for the team's anniversary", 12_000),
];

pub(crate) const CURRENCIES: &[&str] = &["EUR", "USD", "CNY", "GBP", "CHF"];

pub(crate) const EVIDENCE: &[&str] = &[
    "Argued for our proposal in the steering committee.",
    "Shared the competitor's offer with us informally.",
    "Asked sharp questions about our delivery record.",
    "Did not reply to two follow-up emails.",
    "Introduced us to the head of operations.",
    "Said openly that they prefer the incumbent.",
];

/// Meeting notes of roughly `target` bytes, from whole sentences.
pub(crate) fn notes(rng: &mut crate::rng::Rng, target: usize) -> String {
    let mut notes = String::with_capacity(target + 120);
    while notes.len() < target {
        if !notes.is_empty() {
            notes.push(' ');
        }
        notes.push_str(rng.pick::<&str>(NOTE_SENTENCES));
    }
    notes
}
