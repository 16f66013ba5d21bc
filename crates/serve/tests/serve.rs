//! `condor serve` on loopback with the shipped checkpoint: every endpoint with good and bad
//! requests, each limit, slow and surplus clients, a bounded load test, and the page in headless
//! Chromium (skipped with a message where Chromium or ChromeDriver is absent).

mod load;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use candle_core::Device;
use condor::infer::TextToImage;
use condor_serve::{App, Limits};
use tokio::sync::oneshot;

/// A server of the shipped DCGAN on a free loopback port; dropping it stops the server.
struct Server {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Server {
    async fn start(limits: Limits) -> Self {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../weights").join("birds-dcgan-32.safetensors");
        let model = TextToImage::load(&path, &condor::registry(), &Device::Cpu).expect("the shipped 32-px DCGAN loads");
        let app = Arc::new(App::new(model, "birds-dcgan-32", limits).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(condor_serve::serve(listener, app, async {
            let _ = stopped.await;
        }));
        Self { address, stop: Some(stop) }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Posts `body` as JSON to /v1/generate; returns the status and the JSON answer.
async fn generate(server: &Server, body: serde_json::Value) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new().post(server.url("/v1/generate")).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The PNGs of a generate answer, decoded.
fn images(answer: &serde_json::Value) -> Vec<image::RgbImage> {
    answer["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b64| {
            let png = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap()).unwrap();
            image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap().to_rgb8()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_draws_images_and_answers_health_and_models() {
    let server = Server::start(Limits::default()).await;
    let health: serde_json::Value = reqwest::get(server.url("/health")).await.unwrap().json().await.unwrap();
    assert_eq!(health, serde_json::json!({"status": "ok", "queued": 0, "running": 0}));
    let models: serde_json::Value = reqwest::get(server.url("/v1/models")).await.unwrap().json().await.unwrap();
    assert_eq!(models["models"][0]["id"], "birds-dcgan-32");
    assert_eq!(models["models"][0]["plugin"], "dcgan");
    assert_eq!(models["models"][0]["size"], 32);
    assert_eq!(models["models"][0]["truncation"], true, "the DCGAN has conditioning augmentation");
    assert_eq!(models["max_images"], 16);

    let (status, answer) = generate(&server, serde_json::json!({"prompt": "a red bird", "n": 3, "seed": 5})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["prompt"].as_str(), answer["seed"].as_u64(), answer["size"].as_u64()),
        (Some("a red bird"), Some(5), Some(32))
    );
    let drawn = images(&answer);
    assert_eq!(drawn.len(), 3);
    assert!(drawn.iter().all(|i| i.dimensions() == (32, 32)));
    // The same request draws the same images; another seed draws others; the prompt steers colour.
    let (_, again) =
        generate(&server, serde_json::json!({"prompt": "a red bird", "n": 3, "seed": 5, "model": "birds-dcgan-32"}))
            .await;
    assert_eq!(images(&again), drawn);
    let (_, other) = generate(&server, serde_json::json!({"prompt": "a red bird", "n": 3, "seed": 6})).await;
    assert_ne!(images(&other), drawn);
    let (_, blue) = generate(&server, serde_json::json!({"prompt": "a blue bird", "n": 3, "seed": 5})).await;
    let mean = |imgs: &[image::RgbImage], c: usize| {
        imgs.iter().flat_map(|i| i.pixels().map(move |p| f64::from(p[c]))).sum::<f64>() / (3.0 * 1024.0)
    };
    assert!(mean(&drawn, 0) - mean(&drawn, 2) > mean(&images(&blue), 0) - mean(&images(&blue), 2) + 10.0);
    let (status, _) = generate(&server, serde_json::json!({"prompt": "a red bird", "n": 1, "truncation": 0.0})).await;
    assert_eq!(status, 200);

    let page = reqwest::get(server.url("/")).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("/v1/generate"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_that_name_the_limit_and_the_server_keeps_serving() {
    let limits = Limits { max_images: 2, max_prompt_chars: 40, max_body_bytes: 512, ..Limits::default() };
    let server = Server::start(limits).await;
    let client = reqwest::Client::new();
    let post = |body: &'static str, content_type: &'static str| {
        client.post(server.url("/v1/generate")).header("content-type", content_type).body(body).send()
    };
    let cases: Vec<(reqwest::Response, u16, &str)> = vec![
        (post("{\"prompt\": ", "application/json").await.unwrap(), 400, "Failed to parse the request body as JSON"),
        (post("[1, 2]", "application/json").await.unwrap(), 422, "invalid type: integer `1`, expected a string"),
        (
            post("{\"prompt\": \"a bird\", \"n\": \"two\"}", "application/json").await.unwrap(),
            422,
            "n: invalid type: string",
        ),
        (
            post("{\"prompt\": \"a bird\", \"path\": \"/etc/passwd\"}", "application/json").await.unwrap(),
            422,
            "unknown field `path`",
        ),
        (post("{\"prompt\": \"a bird\"}", "text/plain").await.unwrap(), 415, "Content-Type: application/json"),
        (post("{\"prompt\": \"\"}", "application/json").await.unwrap(), 400, "the prompt is empty"),
        (
            post("{\"prompt\": \"a bird\", \"n\": 3}", "application/json").await.unwrap(),
            400,
            "n must be 1 to 2 images, not 3",
        ),
        (
            post("{\"prompt\": \"a bird\", \"model\": \"../weights/x\"}", "application/json").await.unwrap(),
            404,
            "no model `../weights/x`",
        ),
        (
            post("{\"prompt\": \"a bird\", \"n\": 1, \"noise\": \"fixed\"}", "application/json").await.unwrap(),
            400,
            "no style space",
        ),
        (
            client
                .post(server.url("/v1/generate"))
                .json(&serde_json::json!({"prompt": "a".repeat(41)}))
                .send()
                .await
                .unwrap(),
            400,
            "the prompt has 41 characters; this server takes at most 40",
        ),
        (
            client
                .post(server.url("/v1/generate"))
                .json(&serde_json::json!({"prompt": "a".repeat(600)}))
                .send()
                .await
                .unwrap(),
            413,
            "larger than this server's limit of 512 bytes",
        ),
        (client.get(server.url("/v1/generate")).send().await.unwrap(), 405, "/v1/generate does not take GET"),
        (client.get(server.url("/weights/birds-dcgan-32.safetensors")).send().await.unwrap(), 404, "no such page"),
    ];
    for (response, status, message) in cases {
        assert_eq!(response.status().as_u16(), status, "{message}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "{message}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["status"], status);
        assert!(answer["error"].as_str().unwrap().contains(message), "expected `{message}` in {answer}");
    }
    // A body sent in chunks without a declared length is cut at the limit too.
    let address = server.address;
    let chunked = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        let chunk = format!("190\r\n{}\r\n", " ".repeat(400));
        let request = format!(
            "POST /v1/generate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{chunk}{chunk}0\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        read_to_close(stream)
    })
    .await
    .unwrap();
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
    let (status, _) = generate(&server, serde_json::json!({"prompt": "a bird", "n": 2})).await;
    assert_eq!(status, 200, "still serving");
}

/// Reads what the server sends on `stream` until it closes the connection (or 5 s pass).
fn read_to_close(mut stream: std::net::TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_time_out_surplus_connections_are_refused_and_others_are_served() {
    let limits = Limits { read_timeout: Duration::from_millis(400), max_connections: 3, ..Limits::default() };
    let server = Server::start(limits).await;
    let address = server.address;
    let (slow_body, slow_headers, idle, surplus) = tokio::task::spawn_blocking(move || {
        // A client that sends half its body and stalls, one that stalls in its headers, and one that
        // connects and says nothing: together with the next, four connections on a limit of three.
        let mut body = std::net::TcpStream::connect(address).unwrap();
        body.write_all(b"POST /v1/generate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"prompt\": ").unwrap();
        let mut headers = std::net::TcpStream::connect(address).unwrap();
        headers.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n").unwrap();
        let idle = std::net::TcpStream::connect(address).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let surplus = read_to_close(std::net::TcpStream::connect(address).unwrap());
        (read_to_close(body), read_to_close(headers), read_to_close(idle), surplus)
    })
    .await
    .unwrap();
    assert!(surplus.starts_with("HTTP/1.1 503"), "{surplus}");
    assert!(surplus.contains("3 connections open, its limit"), "{surplus}");
    assert!(slow_body.starts_with("HTTP/1.1 408"), "{slow_body}");
    assert!(slow_body.contains("took longer than 0.4 s to arrive"), "{slow_body}");
    // Stalled headers and silence: the connection is closed after the read timeout.
    assert!(!slow_headers.contains("200 OK"), "{slow_headers}");
    assert!(!idle.contains("200 OK"), "{idle}");
    // With the slow ones gone, the server serves.
    let health = reqwest::get(server.url("/health")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_time_limit_gets_a_timeout_and_the_worker_is_freed() {
    // A deadline that has passed by the time the work could run: the answer is a JSON 504.
    let server = Server::start(Limits { request_timeout: Duration::ZERO, ..Limits::default() }).await;
    let (status, answer) = generate(&server, serde_json::json!({"prompt": "a bird", "n": 16})).await;
    assert!(status == 504 || status == 503, "{status} {answer}");
    assert!(answer["error"].as_str().unwrap().contains("time limit"), "{answer}");
    for _ in 0..100 {
        let health: serde_json::Value = reqwest::get(server.url("/health")).await.unwrap().json().await.unwrap();
        if health["running"] == 0 {
            assert_eq!(health["queued"], 0);
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the worker was never freed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_load_of_mixed_requests_gets_the_right_answers_and_nothing_crashes() {
    // A queue long enough for every client: nothing is refused as busy.
    let server = Server::start(Limits { max_queued: 16, ..Limits::default() }).await;
    let report = load::run(&format!("http://{}", server.address), 120, 8).await;
    println!("{}", report.to_markdown());
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.results.len(), 120);
    assert!(report.unexpected().is_empty(), "{:?}", report.unexpected());
    let health: serde_json::Value = reqwest::get(server.url("/health")).await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
}

/// The page in headless Chromium: type a prompt, click Generate, and the grid appears without a
/// reload; an empty prompt shows the server's message. Writes a screenshot to `$CONDOR_SCREENSHOT`
/// when set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_draws_a_grid_in_headless_chromium_without_a_reload() {
    let Some((chromium, chromedriver)) = browser() else {
        let missing =
            "headless Chromium and ChromeDriver are not installed (Debian: apt-get install chromium chromium-driver)";
        assert!(std::env::var_os("CONDOR_REQUIRE_BROWSER").is_none(), "CONDOR_REQUIRE_BROWSER is set but {missing}");
        println!("skipped: {missing}");
        return;
    };
    let server = Server::start(Limits::default()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut driver = std::process::Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let profile = tempfile::tempdir().unwrap();
    let result = drive_page(&server, port, &chromium, profile.path()).await;
    let _ = driver.kill();
    let _ = driver.wait();
    let screenshot = result.unwrap();
    let shot = image::load_from_memory_with_format(&screenshot, image::ImageFormat::Png).unwrap();
    assert!(shot.width() >= 800 && shot.height() >= 400, "{}x{}", shot.width(), shot.height());
    if let Some(path) = std::env::var_os("CONDOR_SCREENSHOT") {
        std::fs::write(&path, &screenshot).unwrap();
        println!("screenshot written to {}", std::path::Path::new(&path).display());
    }
}

/// Chromium and ChromeDriver, when both are installed.
fn browser() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let find = |names: &[&str]| {
        names.iter().map(std::path::PathBuf::from).find(|p| p.is_file()).or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path).flat_map(|dir| names.iter().map(move |n| dir.join(n))).find(|p| p.is_file())
        })
    };
    Some((
        find(&["/usr/bin/chromium", "chromium", "chromium-browser"])?,
        find(&["/usr/bin/chromedriver", "chromedriver"])?,
    ))
}

/// Drives the page through ChromeDriver on `port`; returns a screenshot of the drawn grid.
async fn drive_page(
    server: &Server,
    port: u16,
    chromium: &std::path::Path,
    profile: &std::path::Path,
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    use fantoccini::Locator;
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-quic", "--no-first-run", "--window-size=1000,640",
                     format!("--user-data-dir={}", profile.display())]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let mut client = None;
    for _ in 0..50 {
        match fantoccini::ClientBuilder::new(connector.clone())
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => {
                client = Some(c);
                break;
            }
            // ChromeDriver is still starting.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let client = client.ok_or("ChromeDriver did not answer")?;
    let outcome = async {
        client.goto(&server.url("/")).await?;
        client.wait().for_element(Locator::XPath("//div[@id='model'][contains(., 'dcgan')]")).await?;
        client.execute("window.notReloaded = true;", vec![]).await?;
        let prompt = client.find(Locator::Id("prompt")).await?;
        prompt.clear().await?;
        prompt.send_keys("a yellow bird with blue wings").await?;
        let n = client.find(Locator::Id("n")).await?;
        n.clear().await?;
        n.send_keys("6").await?;
        client.find(Locator::Id("generate")).await?.click().await?;
        client.wait().for_element(Locator::XPath("//div[@id='status'][contains(., '6 images')]")).await?;
        let drawn = client.find_all(Locator::Css("#grid img")).await?;
        assert_eq!(drawn.len(), 6);
        let src = drawn[0].attr("src").await?.unwrap_or_default();
        assert!(src.starts_with("data:image/png;base64,"), "{src:.40}");
        let width = client.execute("return document.querySelector('#grid img').naturalWidth;", vec![]).await?;
        assert_eq!(width, serde_json::json!(32), "the image decoded in the browser");
        let kept = client.execute("return window.notReloaded === true;", vec![]).await?;
        assert_eq!(kept, serde_json::json!(true), "the grid appeared without a reload");
        let screenshot = client.screenshot().await?;

        // A prompt of spaces passes the form's check; the server's message is shown.
        let prompt = client.find(Locator::Id("prompt")).await?;
        prompt.clear().await?;
        prompt.send_keys("   ").await?;
        client.find(Locator::Id("generate")).await?.click().await?;
        client.wait().for_element(Locator::XPath("//div[@id='status'][contains(., 'the prompt is empty')]")).await?;
        Ok::<_, Box<dyn std::error::Error>>(screenshot)
    }
    .await;
    client.close().await?;
    outcome
}

/// A model that draws no images from prompts (a 2D mixture MLP, trained one step) is refused at start
/// with a message that says why.
#[test]
fn a_checkpoint_that_is_not_text_to_image_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut config = condor::train::RunConfig::from_file(&root.join("configs/ring8.toml")).unwrap();
    config.steps = 1;
    let options = condor::train::RunOptions::quiet(tmp.path().join("ring8"), false);
    let run = condor::train::train(config, &condor::registry(), &Device::Cpu, options).unwrap();
    let model = condor::train::export::open_model(&run.checkpoint, &condor::registry(), &Device::Cpu).unwrap();
    let err = App::new(model, "ring8", Limits::default()).err().expect("refused").to_string();
    assert!(err.contains("not a text-to-image model"), "{err}");
}
