//! Log lines, and the request each belongs to.
//!
//! Every line written while serving a request names the request: its id, its
//! method, its route template and the client's IP. A tracing span per request
//! did that for a tenth of an authenticated read's CPU (a registry entry, its
//! fields formatted on creation, entered and left on every poll). Instead, the
//! request's [`RequestContext`] is a thread-local, set around each poll of the
//! request's future ([`in_request`]), and the two line formats of this module,
//! [`TextLines`] and [`JsonLines`], write it with every event, where and as the
//! span was written:
//!
//! - text: `… INFO HTTP request{request_id=… http.method=GET http.route="/x"
//!   http.client_ip=…}: target: message fields`;
//! - JSON: one object per line with the event's fields at the top level and a
//!   `span` object holding `request_id`, `http.method`, `http.route`,
//!   `http.client_ip` and `name`.
//!
//! The context never holds the path or query, which can hold a secret's name or
//! a username. Work a request hands to a blocking thread runs outside it, as it
//! ran outside the span.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The request being served on this thread, as log lines name it.
#[derive(Debug)]
pub struct RequestContext {
    id: String,
    method: &'static str,
    client_ip: Option<IpAddr>,
    route: Cell<Option<&'static str>>,
}

impl RequestContext {
    /// A request's context; its route is set once routing has found it.
    pub fn new(id: String, method: &'static str, client_ip: Option<IpAddr>) -> Self {
        Self {
            id,
            method,
            client_ip,
            route: Cell::new(None),
        }
    }

    /// Records the route template the request matched.
    pub fn set_route(&self, route: &'static str) {
        self.route.set(Some(route));
    }

    /// Runs `f` with the context of the request being served on this thread,
    /// if any.
    pub fn with_current<R>(f: impl FnOnce(Option<&Self>) -> R) -> R {
        CURRENT.with(|current| f(current.borrow().as_deref()))
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<RequestContext>>> = const { RefCell::new(None) };
}

/// Makes `context` the current request's on this thread until the guard drops,
/// and then restores what was current before.
fn enter(context: &Rc<RequestContext>) -> Entered {
    Entered(CURRENT.with(|current| current.replace(Some(Rc::clone(context)))))
}

struct Entered(Option<Rc<RequestContext>>);

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

/// Runs `make` (which starts the request's work) and every poll of the future
/// it returns with `context` current.
pub fn in_request<F: Future>(
    context: Rc<RequestContext>,
    make: impl FnOnce() -> F,
) -> InRequest<F> {
    let inner = {
        let _entered = enter(&context);
        Box::pin(make())
    };
    InRequest { context, inner }
}

/// A request's future, polled with its [`RequestContext`] current.
pub struct InRequest<F> {
    context: Rc<RequestContext>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for InRequest<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _entered = enter(&self.context);
        self.inner.as_mut().poll(cx)
    }
}

/// Human-readable lines, like tracing-subscriber's full format without
/// colours, with the request (when there is one) where its span was.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextLines;

impl<S, N> FormatEvent<S, N> for TextLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        SystemTime.format_time(&mut writer)?;
        write!(writer, " {:>5} ", meta.level())?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                writer.write_str(span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                writer.write_str(": ")?;
            }
        }
        RequestContext::with_current(|request| match request {
            Some(request) => {
                write!(
                    writer,
                    "HTTP request{{request_id={} http.method={}",
                    request.id, request.method
                )?;
                if let Some(route) = request.route.get() {
                    write!(writer, " http.route={route:?}")?;
                }
                if let Some(ip) = request.client_ip {
                    write!(writer, " http.client_ip={ip}")?;
                }
                writer.write_str("}: ")
            }
            None => Ok(()),
        })?;
        write!(writer, "{}: ", meta.target())?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// One JSON object per line: `timestamp`, `level`, the event's fields (with
/// `message`), `target`, and the request as `span` when there is one.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), meta.level().as_str().into());
        event.record(&mut JsonFields(&mut line));
        line.insert("target".into(), meta.target().into());
        RequestContext::with_current(|request| {
            if let Some(request) = request {
                let mut span = Map::new();
                span.insert("request_id".into(), request.id.clone().into());
                span.insert("http.method".into(), request.method.into());
                if let Some(route) = request.route.get() {
                    span.insert("http.route".into(), route.into());
                }
                if let Some(ip) = request.client_ip {
                    span.insert("http.client_ip".into(), ip.to_string().into());
                }
                span.insert("name".into(), "HTTP request".into());
                line.insert("span".into(), Value::Object(span));
            }
        });
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// Collects an event's fields as JSON values.
struct JsonFields<'a>(&'a mut Map<String, Value>);

impl Visit for JsonFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// A log writer shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Logs one line outside a request and one inside, with `format`.
    fn lines<F>(format: F) -> Vec<String>
    where
        F: for<'a> FormatEvent<
                tracing_subscriber::Registry,
                tracing_subscriber::fmt::format::DefaultFields,
            > + Send
            + Sync
            + 'static,
    {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .event_format(format)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(answer = 42, "outside");
            let context = Rc::new(RequestContext::new(
                "req-1".into(),
                "GET",
                Some("203.0.113.9".parse().unwrap()),
            ));
            let mut request = std::pin::pin!(in_request(Rc::clone(&context), || async {
                tracing::info!(flag = true, "before routing");
                RequestContext::with_current(|request| request.unwrap().set_route("/readyz"));
                tracing::error!(dependency = "database", "inside");
            }));
            let waker = std::task::Waker::noop();
            let polled = request.as_mut().poll(&mut Context::from_waker(waker));
            assert!(polled.is_ready());
            tracing::info!("after");
            assert!(
                RequestContext::with_current(|request| request.is_none()),
                "the context is only current while the request is polled"
            );
        });
        captured.text().lines().map(str::to_owned).collect()
    }

    #[test]
    fn text_lines_name_the_request_where_its_span_was() {
        let lines = lines(TextLines);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[0].contains(" WARN "), "{}", lines[0]);
        assert!(lines[0].ends_with("outside answer=42"), "{}", lines[0]);
        assert!(!lines[0].contains("HTTP request"), "{}", lines[0]);
        assert!(
            lines[1].contains(
                "INFO HTTP request{request_id=req-1 http.method=GET http.client_ip=203.0.113.9}: "
            ),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains(
                "ERROR HTTP request{request_id=req-1 http.method=GET http.route=\"/readyz\" \
                 http.client_ip=203.0.113.9}: "
            ),
            "{}",
            lines[2]
        );
        assert!(
            lines[2].ends_with("inside dependency=\"database\""),
            "{}",
            lines[2]
        );
        assert!(!lines[3].contains("HTTP request"), "{}", lines[3]);
    }

    #[test]
    fn json_lines_carry_the_request_as_a_span_object() {
        let lines: Vec<Value> = lines(JsonLines)
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["message"], "outside");
        assert_eq!(lines[0]["answer"], 42);
        assert_eq!(lines[0]["level"], "WARN");
        assert!(lines[0].get("span").is_none());
        assert!(lines[0]["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1]["flag"], true);
        assert_eq!(
            lines[1]["span"],
            serde_json::json!({
                "request_id": "req-1",
                "http.method": "GET",
                "http.client_ip": "203.0.113.9",
                "name": "HTTP request",
            })
        );
        assert_eq!(lines[2]["span"]["http.route"], "/readyz");
        assert_eq!(lines[2]["dependency"], "database");
        assert_eq!(lines[2]["target"], module_path!());
        assert!(lines[3].get("span").is_none());
    }
}
