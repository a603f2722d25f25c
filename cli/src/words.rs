//! What operators type, taken the way they say it: case states in Chinese or English (`已受理`,
//! `accepted`) and places by name or by code (`水寨镇`, `441424100`), turned into what the nodes
//! take. These are clap value parsers, so a word the command does not know is refused before
//! anything is sent, with a sentence listing what it accepts.

use tongban_domains::case::{SpecialProcedureKind, StateKind};
use tongban_domains::places;
use tongban_domains::staff::{Post, WindowKind};

/// A case state: its Chinese term or its English name (`已受理`, `accepted`,
/// `supplement-requested`).
pub(crate) fn state(text: &str) -> Result<StateKind, String> {
    StateKind::parse_term(text).ok_or_else(|| {
        let known: Vec<String> = StateKind::ALL
            .iter()
            .map(|k| format!("{} {}", k.label_zh(), k.as_str()))
            .collect();
        format!(
            "没有名为 {text:?} 的办件状态（unknown state）。可用中文或英文：{}",
            known.join("、")
        )
    })
}

/// A special procedure (特别程序): its Chinese term or its English name (`听证`, `hearing`,
/// `expert-review`).
pub(crate) fn special_procedure(text: &str) -> Result<SpecialProcedureKind, String> {
    SpecialProcedureKind::parse_term(text).ok_or_else(|| {
        let known: Vec<String> = SpecialProcedureKind::ALL
            .iter()
            .map(|k| format!("{} {}", k.label_zh(), k.as_str()))
            .collect();
        format!(
            "没有名为 {text:?} 的特别程序（unknown special procedure）。可用中文或英文：{}",
            known.join("、")
        )
    })
}

/// A township: its name (`水寨镇`, `水寨`, `Shuizhai`) or its 9-digit code.
pub(crate) fn township(text: &str) -> Result<String, String> {
    places::township_code(text).map_err(|e| e.to_string())
}

/// A node of any tier: a division code, or the county's or a town's name.
pub(crate) fn place(text: &str) -> Result<String, String> {
    places::place_code(text).map_err(|e| e.to_string())
}

/// A post: its Chinese term or its English name (`窗口人员`, `window-clerk`).
pub(crate) fn post(text: &str) -> Result<Post, String> {
    Post::parse_term(text).ok_or_else(|| {
        let known: Vec<String> = Post::ALL
            .iter()
            .map(|p| format!("{} {}", p.label_zh(), p.as_str()))
            .collect();
        format!("没有名为 {text:?} 的岗位（unknown post）。可用：{}", known.join("、"))
    })
}

/// A window kind: its Chinese term or its English name (`综合受理窗口`, `comprehensive`).
pub(crate) fn window_kind(text: &str) -> Result<WindowKind, String> {
    WindowKind::parse_term(text).ok_or_else(|| {
        let known: Vec<String> = WindowKind::ALL
            .iter()
            .map(|k| format!("{} {}", k.label_zh(), k.as_str()))
            .collect();
        format!("没有名为 {text:?} 的窗口类型。可用：{}", known.join("、"))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::ops::{OperatorCommand as Command, cases::CaseCommand, parse};

    #[test]
    fn states_are_taken_in_chinese_or_english() {
        assert_eq!(state("已受理"), Ok(StateKind::Accepted));
        assert_eq!(state("accepted"), Ok(StateKind::Accepted));
        assert_eq!(state("result-ready"), Ok(StateKind::ResultReady));
        let err = state("受理了").unwrap_err();
        assert!(err.contains("\"受理了\"") && err.contains("已受理 accepted"), "{err}");
        assert!(err.contains("已评价 rated"), "every state is listed: {err}");
    }

    #[test]
    fn extension_and_special_procedures_parse() {
        let Command::Case {
            command:
                CaseCommand::Extend {
                    case,
                    days,
                    reason,
                    approver,
                },
            ..
        } = parse(&[
            "case",
            "extend",
            "441424100-20261127-0001",
            "--days",
            "10",
            "--reason",
            "需现场核查",
            "--approver",
            "陈局长",
        ])
        .unwrap()
        else {
            panic!("not an extension");
        };
        assert_eq!(
            (case.as_str(), days, reason.as_str(), approver.as_str()),
            ("441424100-20261127-0001", 10, "需现场核查", "陈局长")
        );
        // The reason and the approver are required on the command line already.
        assert!(parse(&["case", "extend", "X", "--days", "3", "--reason", "r"]).is_err());
        for (word, kind) in [
            ("听证", SpecialProcedureKind::Hearing),
            ("expert-review", SpecialProcedureKind::ExpertReview),
        ] {
            let Command::Case {
                command: CaseCommand::SpecialProcedure { kind: got, reason, .. },
                ..
            } = parse(&["case", "special-procedure", "X", "--kind", word, "--reason", "需听证"]).unwrap()
            else {
                panic!("not a special procedure");
            };
            assert_eq!((got, reason.as_str()), (kind, "需听证"));
        }
        let err = parse(&["case", "special-procedure", "X", "--kind", "开会", "--reason", "r"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("听证 hearing") && err.contains("专家评审 expert_review"),
            "{err}"
        );
        assert!(matches!(
            parse(&["case", "end-special-procedure", "X"]).unwrap(),
            Command::Case {
                command: CaseCommand::EndSpecialProcedure { .. },
                ..
            }
        ));
    }

    #[test]
    fn case_list_takes_chinese_states_and_place_names() {
        let Command::Case {
            command: CaseCommand::List { state, holder, .. },
            ..
        } = parse(&["case", "list", "--state", "已受理", "--holder", "华城镇"]).unwrap()
        else {
            panic!("not a case list");
        };
        assert_eq!(
            (state, holder.as_deref()),
            (Some(StateKind::Accepted), Some("441424104"))
        );
        let Command::Case {
            command: CaseCommand::List { state, holder, .. },
            ..
        } = parse(&["case", "list", "--state", "accepted", "--holder", "441424104"]).unwrap()
        else {
            panic!("not a case list");
        };
        assert_eq!(
            (state, holder.as_deref()),
            (Some(StateKind::Accepted), Some("441424104"))
        );
        let err = parse(&["case", "list", "--state", "done"]).unwrap_err().to_string();
        assert!(err.contains("已办结 concluded"), "{err}");
    }

    #[test]
    fn every_township_option_takes_a_name_or_a_code() {
        let commands: [&[&str]; 6] = [
            &["oversight", "--township"],
            &["case", "warnings", "--township"],
            &["seals", "list", "--township"],
            &["rating", "rectifications", "--township"],
            &["custody", "anomalies", "list", "--township"],
            &["catalogue", "list", "--township"],
        ];
        for command in commands {
            for name in ["水寨镇", "441424100"] {
                let args: Vec<&str> = command.iter().copied().chain([name]).collect();
                let parsed = format!("{:?}", parse(&args).unwrap_or_else(|e| panic!("{args:?}: {e}")));
                assert!(parsed.contains("\"441424100\""), "{args:?} gave {parsed}");
            }
            let args: Vec<&str> = command.iter().copied().chain(["水寨县"]).collect();
            let err = parse(&args).unwrap_err().to_string();
            assert!(
                err.contains("unknown township") && err.contains("水寨镇 441424100"),
                "{args:?}: {err}"
            );
        }
    }

    #[test]
    fn node_options_take_names_too() {
        let parsed = format!(
            "{:?}",
            parse(&[
                "custody",
                "pack",
                "--box",
                "B",
                "--from",
                "华城镇",
                "--to",
                "五华县",
                "--doc",
                "D"
            ])
            .unwrap()
        );
        assert!(
            parsed.contains("\"441424104\"") && parsed.contains("\"441424\""),
            "{parsed}"
        );
        let parsed = format!("{:?}", parse(&["case", "hand-over", "C", "--to", "五华县"]).unwrap());
        assert!(parsed.contains("Some(\"441424\")"), "{parsed}");
        let err = parse(&["case", "hand-over", "C", "--to", "梅州"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown place"), "{err}");
    }
}
