//! ISO 4217: which alphabetic codes the contract accepts as `currency`, and
//! how many digits their minor unit has (2 for EUR, 0 for JPY, 3 for KWD).
//!
//! Only codes a shop can take payment in are listed: the precious metals,
//! bond units, SDR and the testing codes (XAU, XDR, XTS, XXX...) are left out.

/// Codes whose minor unit is not two digits, with their exponent.
const NON_TWO_DIGIT: &[(&str, u32)] = &[
    ("BIF", 0),
    ("CLP", 0),
    ("DJF", 0),
    ("GNF", 0),
    ("ISK", 0),
    ("JPY", 0),
    ("KMF", 0),
    ("KRW", 0),
    ("PYG", 0),
    ("RWF", 0),
    ("UGX", 0),
    ("UYI", 0),
    ("VND", 0),
    ("VUV", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("XPF", 0),
    ("BHD", 3),
    ("IQD", 3),
    ("JOD", 3),
    ("KWD", 3),
    ("LYD", 3),
    ("OMR", 3),
    ("TND", 3),
    ("CLF", 4),
    ("UYW", 4),
];

/// Active ISO 4217 codes for currencies, sorted for binary search.
const CODES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
    "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE",
    "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL",
    "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR",
    "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD",
    "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK",
    "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO",
    "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON",
    "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD",
    "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD",
    "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV",
    "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// Every accepted code, sorted: for descriptions that list them.
pub fn codes() -> &'static [&'static str] {
    CODES
}

/// Whether `code` is an accepted ISO 4217 code (upper case, exact).
pub fn is_iso_4217(code: &str) -> bool {
    CODES.binary_search(&code).is_ok()
}

/// Digits of the minor unit of an accepted code; 2 when it is not listed.
pub fn minor_unit_exponent(code: &str) -> u32 {
    NON_TWO_DIGIT
        .iter()
        .find(|(listed, _)| *listed == code)
        .map_or(2, |(_, exponent)| *exponent)
}

/// `1999, "EUR"` -> `"19.99 EUR"`; `500, "JPY"` -> `"500 JPY"`.
pub fn format_minor(amount_minor: i64, code: &str) -> String {
    let exponent = minor_unit_exponent(code);
    let scale = 10_i64.pow(exponent);
    let sign = if amount_minor < 0 { "-" } else { "" };
    let magnitude = amount_minor.unsigned_abs();
    let (major, minor) = (magnitude / scale as u64, magnitude % scale as u64);
    if exponent == 0 {
        format!("{sign}{major} {code}")
    } else {
        format!(
            "{sign}{major}.{minor:0width$} {code}",
            width = exponent as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_table_is_sorted_so_binary_search_is_right() {
        assert!(CODES.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(NON_TWO_DIGIT.iter().all(|(code, _)| is_iso_4217(code)));
    }

    #[test]
    fn real_codes_pass_and_others_do_not() {
        assert!(is_iso_4217("EUR") && is_iso_4217("JPY") && is_iso_4217("KWD"));
        for bad in ["eur", "EURO", "", "XXX", "XAU", "ABC", "US"] {
            assert!(!is_iso_4217(bad), "{bad} should be refused");
        }
    }

    #[test]
    fn amounts_format_with_the_currency_exponent() {
        assert_eq!(format_minor(1999, "EUR"), "19.99 EUR");
        assert_eq!(format_minor(5, "USD"), "0.05 USD");
        assert_eq!(format_minor(500, "JPY"), "500 JPY");
        assert_eq!(format_minor(1234, "KWD"), "1.234 KWD");
    }
}
