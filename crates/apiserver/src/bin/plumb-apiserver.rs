//! The embedded API server alone, without the rest of plumb: `plumb-apiserver --data-dir D
//! [--port P]`. Writes `D/kubeconfig`, prints the URL, serves until SIGTERM or Ctrl-C.
//! `plumb local` is the user-facing command; this binary exists so the crate's own tests
//! can run the server as a separate process (and kill it with SIGKILL).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

fn parse_args() -> Result<(PathBuf, u16), String> {
    let mut data_dir = None;
    let mut port = 0u16;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--data-dir" => data_dir = args.next().map(PathBuf::from),
            "--port" => {
                let p = args.next().ok_or("--port needs a value")?;
                port = p
                    .parse()
                    .map_err(|_| format!("--port: {p:?} is not a port number"))?;
            }
            other => {
                return Err(format!(
                    "unexpected argument {other:?} (usage: plumb-apiserver --data-dir D [--port P])"
                ));
            }
        }
    }
    Ok((data_dir.ok_or("--data-dir is required")?, port))
}

fn main() -> ExitCode {
    let (data_dir, port) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let config =
            plumb_apiserver::Config::new(&data_dir, SocketAddr::from(([127, 0, 0, 1], port)));
        let server = match plumb_apiserver::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = server.write_kubeconfig(&data_dir.join("kubeconfig")) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        println!("listening on {}", server.url());
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: installing the SIGTERM handler: {e}");
                    return ExitCode::FAILURE;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}
