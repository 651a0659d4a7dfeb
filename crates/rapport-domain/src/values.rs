//! Domain values whose rules are checked once, when they are made, and trusted after.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::{InvalidValue, error::quoted};

/// A contact's stance towards us: -2 opponent, -1 skeptic, 0 neutral, +1 supporter, +2 coach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Support(i8);

impl Support {
    /// Accepts -2..=2.
    pub fn new(value: i32) -> Result<Self, InvalidValue> {
        match i8::try_from(value) {
            Ok(v) if (-2..=2).contains(&v) => Ok(Self(v)),
            _ => Err(InvalidValue::new(format!(
                "{value} is out of range; support runs from -2 (opponent) through 0 (neutral) to +2 (coach)"
            ))),
        }
    }

    /// The stance as a number, -2..=2.
    pub fn value(self) -> i8 {
        self.0
    }

    /// The stance's name: `opponent`, `skeptic`, `neutral`, `supporter` or `coach`.
    pub fn name(self) -> &'static str {
        ["opponent", "skeptic", "neutral", "supporter", "coach"][(self.0 + 2) as usize]
    }
}

/// How close and trusting a contact is with us: 0 stranger … 4 trusted advisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Intimacy(u8);

impl Intimacy {
    /// Accepts 0..=4.
    pub fn new(value: u32) -> Result<Self, InvalidValue> {
        match u8::try_from(value) {
            Ok(v) if v <= 4 => Ok(Self(v)),
            _ => Err(InvalidValue::new(format!(
                "{value} is out of range; intimacy runs from 0 (stranger) to 4 (trusted advisor)"
            ))),
        }
    }

    /// The closeness as a number, 0..=4.
    pub fn value(self) -> u8 {
        self.0
    }

    /// The closeness's name.
    pub fn name(self) -> &'static str {
        ["stranger", "acquaintance", "working relationship", "trusted", "trusted advisor"][self.0 as usize]
    }
}

/// A customer satisfaction score, 0 (very dissatisfied) to 10 (very satisfied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SatisfactionScore(u8);

impl SatisfactionScore {
    /// Accepts 0..=10.
    pub fn new(value: u32) -> Result<Self, InvalidValue> {
        match u8::try_from(value) {
            Ok(v) if v <= 10 => Ok(Self(v)),
            _ => Err(InvalidValue::new(format!("{value} is out of range; a satisfaction score runs from 0 to 10"))),
        }
    }

    /// The score, 0..=10.
    pub fn value(self) -> u8 {
        self.0
    }
}

/// An ISO 4217 currency that has a minor unit (so amounts can be given in minor units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency(iso_currency::Currency);

// By code, so that stored projections do not depend on `iso_currency`'s own representation.
impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

impl Currency {
    /// Accepts an upper-case ISO 4217 code with a minor unit (`EUR`, `USD`, `JPY`); refuses
    /// codes without one, such as `XAU` (gold) or `XXX` (no currency).
    pub fn parse(code: &str) -> Result<Self, InvalidValue> {
        if code.is_empty() {
            return Err(InvalidValue::new("currency is required; give an ISO 4217 code such as EUR"));
        }
        let currency = iso_currency::Currency::from_code(code).ok_or_else(|| {
            InvalidValue::new(format!(
                "{} is not an ISO 4217 currency code (upper case, such as EUR or USD)",
                quoted(code)
            ))
        })?;
        if currency.exponent().is_none() {
            return Err(InvalidValue::new(format!(
                "{} has no minor unit, so a value in minor units means nothing; use a currency such as EUR or USD",
                quoted(code)
            )));
        }
        Ok(Self(currency))
    }

    /// The three-letter code.
    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Digits after the decimal point of the currency's minor unit (2 for EUR, 0 for JPY).
    pub fn minor_digits(self) -> u16 {
        self.0.exponent().unwrap_or(0)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An amount of money in integer minor units (cents for EUR); never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// Accepts a non-negative amount in minor units of `currency`.
    pub fn new(minor: i64, currency: Currency) -> Result<Self, InvalidValue> {
        if minor < 0 {
            return Err(InvalidValue::new(format!("{minor} is negative; a value is never below zero")));
        }
        Ok(Self { minor, currency })
    }

    /// The amount in minor units.
    pub fn minor(self) -> i64 {
        self.minor
    }

    /// The currency.
    pub fn currency(self) -> Currency {
        self.currency
    }
}

/// As people read money: the currency code, then the amount in major units by the currency's
/// minor-unit exponent (`USD 120.00`, `JPY 15000`, `BHD 1.250`).
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = u32::from(self.currency.minor_digits());
        if digits == 0 {
            return write!(f, "{} {}", self.currency, self.minor);
        }
        // Never negative (see `new`), so the remainder is the fraction's digits.
        let unit = 10_i64.pow(digits);
        write!(f, "{} {}.{:0width$}", self.currency, self.minor / unit, self.minor % unit, width = digits as usize)
    }
}

macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value's name as people read it.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named_enum!(
    /// The strategic tier of a customer organisation.
    Tier {
        /// Strategic.
        S => "S",
        /// Partner.
        A => "A",
        /// Ordinary, valuable.
        B => "B",
        /// Ordinary.
        C => "C",
    }
);

named_enum!(
    /// The part a contact plays in the customer's buying decisions.
    ContactRole {
        /// Decides.
        DecisionMaker => "decision maker",
        /// Signs off.
        Approver => "approver",
        /// Sways the decision.
        Influencer => "influencer",
        /// Uses what we sell.
        User => "user",
        /// Controls access to others.
        Gatekeeper => "gatekeeper",
        /// Judges the technical fit.
        TechnicalEvaluator => "technical evaluator",
    }
);

named_enum!(
    /// The kind of a meeting; executive visits build the organisational relationship.
    MeetingKind {
        /// A visit at the customer's or ours.
        Visit => "visit",
        /// A visit with executives on both sides.
        ExecutiveVisit => "executive visit",
        /// A dinner.
        Dinner => "dinner",
        /// A technical exchange.
        TechnicalExchange => "technical exchange",
        /// A phone or video call.
        Call => "call",
        /// An event (conference, trade show, customer day).
        Event => "event",
        /// A working session.
        Workshop => "workshop",
    }
);

named_enum!(
    /// The part a member plays in the account team beyond the owner.
    TeamRole {
        /// Sales.
        Sales => "sales",
        /// Solution design.
        Solution => "solution",
        /// Delivery.
        Delivery => "delivery",
        /// After-sales service.
        Service => "service",
        /// The executive who sponsors the relationship.
        ExecutiveSponsor => "executive sponsor",
    }
);

named_enum!(
    /// How a relationship plan was closed.
    PlanOutcome {
        /// Its target was reached.
        Achieved => "achieved",
        /// It was given up.
        Abandoned => "abandoned",
    }
);

named_enum!(
    /// The kind of a relationship outcome.
    OutcomeKind {
        /// A deal we won.
        DealWon => "deal won",
        /// A deal we lost.
        DealLost => "deal lost",
        /// A strategic agreement signed between the companies.
        StrategicAgreement => "strategic agreement",
        /// A renewal.
        Renewal => "renewal",
        /// A joint initiative started.
        JointInitiative => "joint initiative",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn support_and_intimacy_ranges() {
        for v in -2..=2 {
            assert_eq!(i32::from(Support::new(v).unwrap().value()), v);
        }
        for v in [-3, 3, i32::MIN, i32::MAX, 130, -130] {
            assert!(Support::new(v).is_err(), "support {v}");
        }
        for v in 0..=4 {
            assert_eq!(u32::from(Intimacy::new(v).unwrap().value()), v);
        }
        for v in [5, 256, u32::MAX] {
            assert!(Intimacy::new(v).is_err(), "intimacy {v}");
        }
        assert_eq!(Support::new(2).unwrap().name(), "coach");
        assert_eq!(Support::new(-2).unwrap().name(), "opponent");
    }

    #[test]
    fn currencies() {
        assert_eq!(Currency::parse("EUR").unwrap().minor_digits(), 2);
        assert_eq!(Currency::parse("JPY").unwrap().minor_digits(), 0);
        for bad in ["", "eur", "EURO", "ABC", "XAU", "XXX"] {
            assert!(Currency::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn money() {
        let eur = Currency::parse("EUR").unwrap();
        assert!(Money::new(-1, eur).is_err());
        assert_eq!(Money::new(12_345, eur).unwrap().to_string(), "EUR 123.45");
        assert_eq!(Money::new(5, eur).unwrap().to_string(), "EUR 0.05");
        assert_eq!(Money::new(5_000, Currency::parse("JPY").unwrap()).unwrap().to_string(), "JPY 5000");
        // Bahraini dinar: three digits after the point.
        assert_eq!(Money::new(1_250, Currency::parse("BHD").unwrap()).unwrap().to_string(), "BHD 1.250");
    }
}
