//! Connecting the command line to a node: operator certificate, CA, address, and turning what a
//! node answered, or why it could not be reached, into a [`NodeAnswer`]: what was refused, in the
//! node's own words, and what to do next.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tongban_domains::tls::{GENERIC_NODE_NAME, TlsFiles, explain_transport_error, transport_failure};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// Where the node is and which certificate to present. The environment variables are
/// `TONGBAN_CLI_*`: a node reads every `TONGBAN_NODE_*` variable as its own setting, so the two
/// never meet on one machine.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// The node's address.
    #[arg(
        long,
        env = "TONGBAN_CLI_NODE",
        default_value = "https://127.0.0.1:7000",
        global = true
    )]
    pub node: String,
    /// The county CA certificate.
    #[arg(long, env = "TONGBAN_CLI_CA", default_value = "tongban-pki/ca.pem", global = true)]
    pub ca: PathBuf,
    /// The operator certificate.
    #[arg(
        long,
        env = "TONGBAN_CLI_CERT",
        default_value = "tongban-pki/operators/441424-admin.pem",
        global = true
    )]
    pub cert: PathBuf,
    /// The operator's private key.
    #[arg(
        long,
        env = "TONGBAN_CLI_KEY",
        default_value = "tongban-pki/operators/441424-admin.key",
        global = true
    )]
    pub key: PathBuf,
}

impl Connection {
    /// A TLS channel to the node (the node's certificate must come from our CA).
    pub async fn channel(&self) -> Result<Channel> {
        let tls = TlsFiles {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
        .load()
        .context("loading the operator certificate (--ca, --cert, --key)")?;
        let endpoint = Endpoint::from_shared(self.node.clone())
            .with_context(|| format!("--node {:?} is not an address like https://127.0.0.1:7000", self.node))?
            .tls_config(tls.client_config(GENERIC_NODE_NAME))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10));
        endpoint.connect().await.map_err(|e| {
            let sentence = explain_transport_error(&e, &format!("node {}", self.node));
            NodeAnswer::unreachable(&self.node, &sentence).into()
        })
    }

    /// Turns an RPC failure into what was refused and what to do next.
    pub fn explain(&self, status: tonic::Status) -> anyhow::Error {
        NodeAnswer::from_status(&status, &self.node, None).into()
    }

    /// Like [`Connection::explain`], with a next step the caller knows better than the status
    /// code does (a case's state and the commands that move it from there).
    pub fn explain_with(&self, status: tonic::Status, next: String) -> anyhow::Error {
        NodeAnswer::from_status(&status, &self.node, Some(next)).into()
    }
}

/// What a node answered, or why it could not answer: a sentence saying what was refused (the
/// node's own words after it) and one saying what to do next. The gRPC code and the transport
/// stay out of it; they mean nothing at a service window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAnswer {
    pub what: String,
    pub next: String,
}

impl NodeAnswer {
    fn unreachable(node: &str, sentence: &str) -> NodeAnswer {
        NodeAnswer {
            what: format!("无法连接节点 {node}：{sentence}"),
            next: "检查地址（--node 或 TONGBAN_CLI_NODE）、节点是否在运行、网络是否连通；\
                   证书被拒时检查 --ca、--cert、--key 是否为本县 CA 签发"
                .to_owned(),
        }
    }

    /// The answer for `status` from `node`; `next` replaces the code's own next step.
    pub fn from_status(status: &tonic::Status, node: &str, next: Option<String>) -> NodeAnswer {
        if let Some(sentence) = transport_failure(status, &format!("node {node}")) {
            return NodeAnswer::unreachable(node, &sentence);
        }
        let said = status.message().trim();
        let (head, step) = match status.code() {
            Code::FailedPrecondition => (
                "被拒绝",
                "它现在的状态不允许这一步：用 `tongban case show <办件>` 查看办件的状态和办理过程\
                 （材料箱用 `tongban custody box history --box <箱>`），做它此刻允许的一步",
            ),
            Code::PermissionDenied => (
                "无权操作",
                "换用有此权限的证书（--cert、--key，或 TONGBAN_CLI_CERT、TONGBAN_CLI_KEY）：\
                 办件由持有它的节点的操作员办理，事项目录和日历由县级管理员发布，\
                 快递员上传扫描用自己的证书",
            ),
            Code::Unauthenticated => (
                "身份未被认可",
                "使用本县 CA 签发的操作员证书（tongban pki init 生成的 operators/ 下的文件）",
            ),
            Code::InvalidArgument => ("输入有误", "检查命令的参数（tongban <命令> --help）"),
            Code::NotFound => (
                "未找到",
                "检查编号是否写对；一个节点只知道它持有的事项目录版本和经过它的办件、材料，\
                 可到持有办件的节点或县节点查询（--node）",
            ),
            Code::AlreadyExists => ("已存在", "换一个编号，或查看已有的那一个"),
            Code::Aborted => ("与同时进行的另一操作冲突", "重新执行这条命令"),
            Code::Unimplemented => (
                "此节点不提供该功能",
                "连接提供它的节点：县级功能（发布目录、日历、督办）连接县节点（--node）",
            ),
            Code::ResourceExhausted => ("请求过大或节点繁忙", "缩小范围（--limit、筛选条件）或稍后重试"),
            Code::OutOfRange => ("超出范围", "检查数值和日期"),
            Code::DeadlineExceeded | Code::Cancelled => {
                ("节点没有及时回答", "稍后重试；若反复出现，检查网络和节点的负载")
            }
            Code::Unavailable => ("节点暂时不能办理", "稍后重试；若反复出现，用 tongban status 查看节点"),
            Code::Internal | Code::Unknown | Code::DataLoss | Code::Ok => {
                ("节点内部错误", "请把这条信息和时间告诉系统管理员，节点日志中有详情")
            }
        };
        // A node that knows the next step better than the code does says it after 下一步：.
        let (said, said_next) = match said.split_once("下一步：") {
            Some((what, step)) if !step.trim().is_empty() => (
                what.trim_end_matches(['；', ';', ' ', '\n']),
                Some(step.trim().to_owned()),
            ),
            _ => (said, None),
        };
        let what = if said.is_empty() {
            format!("{head}（节点 {node}）")
        } else {
            format!("{head}：{said}")
        };
        NodeAnswer {
            what,
            next: next.or(said_next).unwrap_or_else(|| step.to_owned()),
        }
    }
}

impl std::fmt::Display for NodeAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n下一步：{}", self.what, self.next)
    }
}

impl std::error::Error for NodeAnswer {}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tonic::Status;

    const NODE: &str = "https://127.0.0.1:7100";

    fn answer(status: Status) -> String {
        NodeAnswer::from_status(&status, NODE, None).to_string()
    }

    #[test]
    fn a_refusal_says_what_and_what_next_without_the_transport() {
        let text = answer(Status::failed_precondition("cannot decide a case that is handling"));
        assert!(
            text.starts_with("被拒绝：cannot decide a case that is handling\n下一步："),
            "{text}"
        );
        assert!(text.contains("tongban case show"), "{text}");
        for noise in ["answered", "FailedPrecondition", NODE] {
            assert!(!text.contains(noise), "{noise:?} in {text}");
        }
        let text = answer(Status::permission_denied("operator:441424100:clerk may not publish"));
        assert!(text.starts_with("无权操作：operator:441424100:clerk"), "{text}");
        assert!(text.contains("--cert"), "which certificate to use: {text}");
        let text = answer(Status::not_found("no case 441424100-20261127-0009"));
        assert!(text.starts_with("未找到：no case"), "{text}");
        let text = answer(Status::unimplemented("the calendar is published at the county 441424"));
        assert!(text.contains("县节点"), "{text}");
    }

    #[test]
    fn an_unreachable_node_is_named_with_where_to_look() {
        let text = answer(Status::unavailable("tcp connect error: Connection refused"));
        assert!(text.starts_with("无法连接节点 https://127.0.0.1:7100："), "{text}");
        assert!(text.contains("connection refused") && text.contains("--node"), "{text}");
    }

    #[test]
    fn a_node_may_give_the_next_step() {
        let status = Status::invalid_argument("基本编码 050009005000 对应 2 个实施事项；下一步：改用实施编码");
        let text = answer(status);
        assert_eq!(
            text,
            "输入有误：基本编码 050009005000 对应 2 个实施事项\n下一步：改用实施编码"
        );
    }

    #[test]
    fn a_caller_may_give_the_next_step() {
        let status = Status::failed_precondition("cannot decide a case that is handling");
        let text = NodeAnswer::from_status(&status, NODE, Some("先提交审核：tongban case review X".into())).to_string();
        assert!(text.ends_with("下一步：先提交审核：tongban case review X"), "{text}");
    }
}
