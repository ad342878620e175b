use athena_config::Config;
use tracing_subscriber::EnvFilter;

/// Structured logs: JSON lines by default (one object per event, with the request id of its span),
/// or human-readable with `ATHENA_LOG_FORMAT=pretty`.
pub fn init_tracing(config: &Config) {
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if config.log_format == "pretty" {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
    };
}
