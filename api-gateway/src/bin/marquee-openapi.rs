//! `marquee-openapi`: prints the gateway's OpenAPI document (the same one `/openapi.json`
//! serves) without starting anything, so CI can validate it and clients can generate code.

fn main() -> std::process::ExitCode {
    match serde_json::to_string_pretty(&api_gateway::http::openapi()) {
        Ok(json) => {
            println!("{json}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("marquee-openapi: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
