//! The one way the domains write a fieldless vocabulary enum (states, actions, posts, window
//! kinds): English `snake_case` names for machines, simplified-Chinese terms for clerks, and a
//! parser that takes either, so every command accepts what a clerk types.

/// Generates a fieldless enum with `ALL`, `as_str`, `label_zh` and a Display of
/// `english (中文)`.
macro_rules! labelled_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $en:literal, $zh:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The English `snake_case` name (the serde name).
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $en,)+ }
            }

            /// The simplified-Chinese term a clerk reads.
            pub const fn label_zh(self) -> &'static str {
                match self { $($name::$variant => $zh,)+ }
            }

            /// Reads what an operator types: the English name in any case, with `_`, `-` or a
            /// space between words (`supplement-requested`), or the Chinese term (`补正中`).
            pub fn parse_term(term: &str) -> Option<Self> {
                let t = term.trim();
                let english = t.to_ascii_lowercase().replace(['-', ' '], "_");
                Self::ALL.iter().copied().find(|v| v.as_str() == english || v.label_zh() == t)
            }
        }

        impl ::std::fmt::Display for $name {
            /// `english (中文)`, e.g. `accepted (已受理)`.
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{} ({})", self.as_str().replace('_', " "), self.label_zh())
            }
        }
    };
}
