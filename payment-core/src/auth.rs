//! Who may call PaymentService: bearer API keys, each with a name, the
//! merchant it acts for and its roles.
//!
//! The configuration holds keys hashed (SHA-256, hex), never the keys:
//! whoever reads the config or the environment cannot call with it. Plain
//! SHA-256 suffices because keys are random (32 bytes from
//! [`generate`]), not passwords: there is nothing to guess from a hash. A
//! presented key is hashed and compared with every configured hash in
//! constant time, so the answer time says nothing about which bytes
//! matched. Several keys may be live at once, which is how a key is
//! rotated: add the new one, move clients, remove the old one.
//!
//! Roles (what each may do is [`Permission`]'s table):
//! - `merchant`: create, read and cancel orders; reads its own orders'
//!   client secrets (CreateOrder and GetOrder);
//! - `gateway`: read, history and watch every order (it hands each browser
//!   its own order's stream, and checks the browser's secret against the
//!   digest every order and event carries);
//! - `reader`: read one order (the provider's page).
//!
//! No event carries a client secret, for any role.
//!
//! health and reflection are open; ProviderService is proven by its HMAC
//! signature instead (`grpc::provider`).

use std::{fmt, sync::Arc};

use anyhow::Context;
use payments_proto::contract::dev;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::{Request, Status, metadata::MetadataMap};

use crate::domain::{MerchantId, Order};

/// What a caller can be allowed to do, one per kind of call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Create,
    Read,
    Cancel,
    /// ListOrderEvents, ListEvents and WatchPayments.
    History,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Merchant,
    Gateway,
    Reader,
}

impl Role {
    const ALL: [Role; 3] = [Role::Merchant, Role::Gateway, Role::Reader];

    fn name(self) -> &'static str {
        match self {
            Role::Merchant => "merchant",
            Role::Gateway => "gateway",
            Role::Reader => "reader",
        }
    }

    fn parse(raw: &str) -> anyhow::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|role| role.name() == raw)
            .with_context(|| format!("unknown role `{raw}` (merchant, gateway or reader)"))
    }

    fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Merchant => matches!(permission, Create | Read | Cancel | History),
            Role::Gateway => matches!(permission, Read | History),
            Role::Reader => matches!(permission, Read),
        }
    }
}

/// An authenticated caller, put in the request's extensions by [`ApiKeys`]
/// for the handlers to ask.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's name, for logs (the key itself is never logged).
    pub name: String,
    pub merchant: MerchantId,
    roles: Vec<Role>,
}

impl Caller {
    /// The caller of `request`, if one of its roles allows `permission`.
    pub fn of<T>(request: &Request<T>, permission: Permission) -> Result<Arc<Caller>, Status> {
        let caller = request
            .extensions()
            .get::<Arc<Caller>>()
            // Only reachable if the service was mounted without its interceptor.
            .ok_or_else(|| Status::unauthenticated("missing API key"))?;
        if caller.roles.iter().any(|role| role.allows(permission)) {
            Ok(Arc::clone(caller))
        } else {
            // Named here as well as in the call's span: at `warn` the
            // `info` span is filtered out, and this line must still say who.
            tracing::warn!(caller = %caller.name, ?permission, "call refused: role does not allow it");
            Err(Status::permission_denied(format!(
                "API key `{}` may not {}",
                caller.name,
                permission.describe()
            )))
        }
    }

    /// Whether this caller may read `order`: gateway and reader keys serve
    /// every merchant's payers and see every order; a merchant key sees its
    /// merchant's orders only. An order it may not see is NOT_FOUND to it,
    /// like one that does not exist.
    pub fn sees(&self, order: &Order) -> bool {
        self.roles
            .iter()
            .any(|role| matches!(role, Role::Gateway | Role::Reader))
            || self.owns(order)
    }

    /// Whether this caller's history and watch answers hold `order`'s
    /// events: every order's for the gateway role, which streams them to
    /// every merchant's payers; its own merchant's otherwise. A `reader`
    /// role reads single orders and adds nothing here, so a key holding
    /// `merchant` and `reader` cannot list or watch other merchants' orders,
    /// which neither role may alone.
    pub fn sees_events_of(&self, order: &Order) -> bool {
        self.roles.contains(&Role::Gateway) || self.owns(order)
    }

    /// Whether `order` is this caller's merchant's: only then may it cancel
    /// it. An order from before merchants were recorded is nobody's: missing
    /// data fails closed (gateway and reader keys still see it).
    pub fn owns(&self, order: &Order) -> bool {
        order.merchant.as_ref() == Some(&self.merchant)
    }

    /// Whether a single order read returns its client secret: only to the
    /// merchant whose order it is (it was theirs to hand out). Never through
    /// a `gateway` or `reader` role, whatever else the key holds: a gateway
    /// checks secrets against their digest.
    pub fn may_read_secret_of(&self, order: &Order) -> bool {
        self.roles.contains(&Role::Merchant) && self.owns(order)
    }
}

impl Permission {
    fn describe(self) -> &'static str {
        match self {
            Permission::Create => "create orders",
            Permission::Read => "read orders",
            Permission::Cancel => "cancel orders",
            Permission::History => "read or watch order events",
        }
    }
}

/// One configured key: `name:merchant:role[+role...]:sha256-hex`.
#[derive(Clone)]
struct KeyEntry {
    hash: [u8; 32],
    caller: Arc<Caller>,
}

impl KeyEntry {
    fn parse(line: &str) -> anyhow::Result<Self> {
        let fields: Vec<&str> = line.split(':').collect();
        let [name, merchant, roles, hash] = fields[..] else {
            anyhow::bail!("an API key entry is `name:merchant:roles:sha256-hex`");
        };
        anyhow::ensure!(!name.is_empty(), "an API key entry has an empty name");
        let merchant = MerchantId::parse("merchant", merchant)
            .map_err(|error| anyhow::anyhow!("key `{name}`: {error}"))?;
        let roles = roles
            .split('+')
            .map(Role::parse)
            .collect::<anyhow::Result<Vec<_>>>()
            .with_context(|| format!("key `{name}`"))?;
        let hash: [u8; 32] = hex::decode(hash)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .with_context(|| format!("key `{name}`: the hash must be 64 hex digits (SHA-256)"))?;
        Ok(Self {
            hash,
            caller: Arc::new(Caller {
                name: name.to_owned(),
                merchant,
                roles,
            }),
        })
    }
}

/// The keys PaymentService accepts.
#[derive(Clone)]
pub struct ApiKeys {
    /// Shared: the interceptor holding these is cloned with the service.
    entries: Arc<[KeyEntry]>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|entry| &entry.caller.name))
            .finish()
    }
}

impl ApiKeys {
    /// Entries separated by commas or newlines; blank lines and `#`
    /// comments are skipped. Names must be unique, and so must hashes.
    pub fn parse(list: &str) -> anyhow::Result<Self> {
        let entries = list
            .split([',', '\n'])
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(KeyEntry::parse)
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!entries.is_empty(), "no API key configured");
        for (i, entry) in entries.iter().enumerate() {
            for other in &entries[..i] {
                anyhow::ensure!(
                    other.caller.name != entry.caller.name,
                    "two API keys are named `{}`",
                    entry.caller.name
                );
                anyhow::ensure!(
                    other.hash != entry.hash,
                    "API keys `{}` and `{}` are the same key",
                    other.caller.name,
                    entry.caller.name
                );
            }
        }
        Ok(Self {
            entries: entries.into(),
        })
    }

    /// The public development keys of `contract::dev`: the gateway's, a
    /// merchant's and the provider's.
    pub fn development() -> Self {
        let entry = |name: &str, merchant: &str, roles: &str, key: &str| {
            format!("{name}:{merchant}:{roles}:{}", hash_hex(key))
        };
        let list = [
            entry(
                "dev-gateway",
                dev::MERCHANT,
                "merchant+gateway",
                dev::GATEWAY_API_KEY,
            ),
            entry(
                "dev-merchant",
                dev::MERCHANT,
                "merchant",
                dev::MERCHANT_API_KEY,
            ),
            entry(
                "dev-provider",
                "dev-provider",
                "reader",
                dev::PROVIDER_API_KEY,
            ),
        ]
        .join(",");
        Self::parse(&list).expect("the development keys are well formed")
    }

    /// The caller whose key `metadata`'s `authorization: Bearer` carries.
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Arc<Caller>, Status> {
        let Some(header) = metadata.get("authorization") else {
            return Err(Status::unauthenticated(
                "missing API key: send `authorization: Bearer <key>`",
            ));
        };
        let key = header
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            // The scheme is case-insensitive (RFC 7235 section 2.1).
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
            .map(|(_, key)| key.trim())
            .filter(|key| !key.is_empty())
            .ok_or_else(|| {
                Status::unauthenticated("malformed authorization: expected `Bearer <key>`")
            })?;
        let presented = hash(key);
        // Every entry is compared, match or not: the time taken does not
        // depend on which key matched, or how much of a hash did.
        let mut found = None;
        for entry in self.entries.iter() {
            if bool::from(entry.hash[..].ct_eq(&presented[..])) {
                found = Some(&entry.caller);
            }
        }
        match found {
            Some(caller) => Ok(Arc::clone(caller)),
            None => {
                tracing::warn!("call refused: unknown API key");
                Err(Status::unauthenticated("unknown API key"))
            }
        }
    }

    /// The tonic interceptor for PaymentService: authenticates every call,
    /// names its key in the call's span (`caller`) and leaves the
    /// [`Caller`] in its extensions.
    pub fn interceptor(
        self,
    ) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static
    {
        move |mut request: Request<()>| {
            let caller = self.authenticate(request.metadata())?;
            tracing::Span::current().record("caller", caller.name.as_str());
            request.extensions_mut().insert(caller);
            Ok(request)
        }
    }

    /// Whether these are exactly the public development keys.
    pub fn are_development(&self) -> bool {
        let public = self.public_key_names();
        public.len() == self.entries.len() && public.len() == Self::development().entries.len()
    }

    /// The names of configured keys that are public development keys:
    /// anyone who has read the contract can call with them.
    pub fn public_key_names(&self) -> Vec<&str> {
        let development = Self::development();
        self.entries
            .iter()
            .filter(|entry| development.entries.iter().any(|dev| dev.hash == entry.hash))
            .map(|entry| entry.caller.name.as_str())
            .collect()
    }
}

fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The SHA-256 of `key`, in hex: what the configuration holds.
pub fn hash_hex(key: &str) -> String {
    hex::encode(hash(key))
}

/// A new random key (`pcore_` and 64 hex digits) and its configuration entry.
pub fn generate(name: &str, merchant: &str, roles: &str) -> anyhow::Result<(String, String)> {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let key = format!("pcore_{}", hex::encode(bytes));
    let entry = format!("{name}:{merchant}:{roles}:{}", hash_hex(&key));
    KeyEntry::parse(&entry)?;
    Ok((key, entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(authorization: Option<&str>) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        if let Some(value) = authorization {
            metadata.insert("authorization", value.parse().expect("ascii"));
        }
        metadata
    }

    #[test]
    fn a_key_is_known_by_its_hash_and_names_its_caller() {
        let keys = ApiKeys::parse(&format!(
            "shop-old:shop:merchant:{}\n# rotated in\nshop-new:shop:merchant:{}",
            hash_hex("old-key"),
            hash_hex("new-key")
        ))
        .expect("valid");
        let caller = |auth| keys.authenticate(&metadata(auth)).map(|c| c.name.clone());
        assert_eq!(
            caller(Some("Bearer old-key")).ok().as_deref(),
            Some("shop-old")
        );
        assert_eq!(
            caller(Some("Bearer new-key")).ok().as_deref(),
            Some("shop-new")
        );
        assert_eq!(
            caller(Some("bearer new-key")).ok().as_deref(),
            Some("shop-new")
        );
        for refused in [
            None,
            Some("Bearer other"),
            Some("old-key"),
            Some("Bearer "),
            Some("Basic b2xkLWtleQ=="),
        ] {
            assert_eq!(
                keys.authenticate(&metadata(refused)).unwrap_err().code(),
                tonic::Code::Unauthenticated,
                "{refused:?}"
            );
        }
    }

    #[test]
    fn a_hash_that_differs_in_any_one_byte_is_not_a_match() {
        let presented = hash("the-key");
        for byte in 0..presented.len() {
            let mut near = presented;
            near[byte] ^= 1;
            let keys = ApiKeys::parse(&format!("near:shop:merchant:{}", hex::encode(near)))
                .expect("valid");
            let answer = keys.authenticate(&metadata(Some("Bearer the-key")));
            assert_eq!(
                answer.map(|caller| caller.name.clone()).unwrap_err().code(),
                tonic::Code::Unauthenticated,
                "byte {byte}"
            );
        }
    }

    #[test]
    fn roles_allow_what_the_table_says() {
        use Permission::*;
        let allowed = |role: Role| {
            [Create, Read, Cancel, History]
                .into_iter()
                .filter(|p| role.allows(*p))
                .collect::<Vec<_>>()
        };
        assert_eq!(allowed(Role::Merchant), [Create, Read, Cancel, History]);
        assert_eq!(allowed(Role::Gateway), [Read, History]);
        assert_eq!(allowed(Role::Reader), [Read]);
    }

    #[test]
    fn bad_entries_are_refused_at_startup() {
        let hash = hash_hex("k");
        for bad in [
            String::new(),
            "a:shop:merchant".to_string(),
            format!("a:shop:owner:{hash}"),
            format!("a:sh/op:merchant:{hash}"),
            "a:shop:merchant:abcd".to_string(),
            format!(":shop:merchant:{hash}"),
            format!("a:shop:merchant:{hash},a:shop:merchant:{}", hash_hex("j")),
            format!("a:shop:merchant:{hash},b:shop:merchant:{hash}"),
        ] {
            assert!(ApiKeys::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_keys_authenticate_with_their_entry() {
        let (key, entry) = generate("shop", "shop", "merchant+gateway").expect("valid");
        assert!(!entry.contains(&key));
        let keys = ApiKeys::parse(&entry).expect("valid");
        let caller = keys
            .authenticate(&metadata(Some(&format!("Bearer {key}"))))
            .expect("known");
        assert_eq!(caller.name, "shop");
        assert!(ApiKeys::development().are_development());
        assert!(!keys.are_development());
        assert!(keys.public_key_names().is_empty());
        let mixed = ApiKeys::parse(&format!(
            "{entry},kept:shop:merchant:{}",
            hash_hex(dev::MERCHANT_API_KEY)
        ))
        .expect("valid");
        assert!(!mixed.are_development());
        assert_eq!(mixed.public_key_names(), ["kept"]);
    }
}
