//! A real browser for the web tests: Debian's headless Chromium driven over WebDriver
//! (`chromedriver`, installed by scripts/setup) with `fantoccini`. Helpers wait for what a
//! person would see (an element, its text, its state) with deadlines, never fixed sleeps, and
//! take screenshots: on a failed behaviour (into `target/<profile>/web-failures/`) and, when
//! `MARQUEE_WEB_SCREENSHOTS` names a folder, of each page for docs/web.md.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// How long a page may take to show what a step waits for (2 shared cores in CI).
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A `chromedriver` process in its own process group; the group (chromedriver and every
/// Chromium it started) is SIGKILLed when dropped, so no browser outlives the test.
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it answers.
    ///
    /// # Errors
    /// chromedriver is missing (run scripts/setup) or did not start.
    pub async fn start() -> Result<Driver> {
        let port = tests::free_port();
        let child = Command::new(std::env::var("CHROMEDRIVER").unwrap_or("chromedriver".into()))
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "starting chromedriver (Debian package chromium-driver; scripts/setup installs it)",
            )?;
        let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
        let status = format!("{}/status", driver.url);
        let http = reqwest::Client::new();
        tests::eventually("chromedriver up", Duration::from_secs(20), || async {
            Ok(http.get(&status).send().await.ok().filter(|r| r.status().is_success()).map(|_| ()))
        })
        .await?;
        Ok(driver)
    }

    /// A new browser window (its own profile: its own storage and sign-in) of `width` x
    /// `height` CSS pixels, on the site at `site`.
    ///
    /// # Errors
    /// The browser did not start.
    pub async fn page(&self, name: &str, site: &str, width: u32, height: u32) -> Result<Page> {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-extensions", "--no-first-run", "--disable-background-networking",
                    "--hide-scrollbars", "--force-device-scale-factor=1",
                    format!("--window-size={width},{height}"),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .context("opening a Chromium session")?;
        Ok(Page { client, site: site.to_owned(), name: name.to_owned() })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The browsers chromedriver started are in its process group: killing chromedriver
        // alone would orphan them.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser window on the site.
pub struct Page {
    /// The WebDriver session.
    pub client: Client,
    site: String,
    /// Names its screenshots.
    pub name: String,
}

/// Where failure screenshots go: next to the binaries under test.
pub fn failure_dir() -> PathBuf {
    tests::bin_dir().join("web-failures")
}

impl Page {
    /// Opens `path` of the site (e.g. `/` or `/#/bookings`).
    ///
    /// # Errors
    /// Navigation failed.
    pub async fn open(&self, path: &str) -> Result<()> {
        self.client.goto(&format!("{}{path}", self.site)).await?;
        Ok(())
    }

    /// Waits until `css` matches a displayed element.
    ///
    /// # Errors
    /// Nothing matched within [`PATIENCE`].
    pub async fn find(&self, css: &str) -> Result<Element> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(found) = self.client.find(Locator::Css(css)).await {
                if found.is_displayed().await.unwrap_or(false) {
                    return Ok(found);
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: no visible {css} within {PATIENCE:?}; page says: {}",
                    self.name,
                    self.main_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the element at `css` shows text containing `wanted`; returns its text.
    ///
    /// # Errors
    /// It did not within `within`.
    pub async fn wait_text_within(
        &self,
        css: &str,
        wanted: &str,
        within: Duration,
    ) -> Result<String> {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        loop {
            if let Ok(found) = self.client.find(Locator::Css(css)).await {
                last = found.text().await.unwrap_or_default();
                if last.contains(wanted) {
                    return Ok(last);
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: {css} never showed {wanted:?} (last: {last:?}); page says: {}",
                    self.name,
                    self.main_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(80)).await;
        }
    }

    /// [`Page::wait_text_within`] with [`PATIENCE`].
    ///
    /// # Errors
    /// It did not show it in time.
    pub async fn wait_text(&self, css: &str, wanted: &str) -> Result<String> {
        self.wait_text_within(css, wanted, PATIENCE).await
    }

    /// Waits until the element at `css` has attribute `name` equal to `value`.
    ///
    /// # Errors
    /// It did not within `within`.
    pub async fn wait_attr(
        &self,
        css: &str,
        name: &str,
        value: &str,
        within: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + within;
        let mut last = None;
        loop {
            if let Ok(found) = self.client.find(Locator::Css(css)).await {
                last = found.attr(name).await.ok().flatten();
                if last.as_deref() == Some(value) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("{}: {css} [{name}] never became {value:?} (last: {last:?})", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the element at `css` once it is visible.
    ///
    /// # Errors
    /// Not found in time, or the click failed.
    pub async fn click(&self, css: &str) -> Result<()> {
        self.find(css)
            .await?
            .click()
            .await
            .with_context(|| format!("{}: clicking {css}", self.name))?;
        Ok(())
    }

    /// Clicks the link or button whose text is exactly `text`.
    ///
    /// # Errors
    /// Not found in time, or the click failed.
    pub async fn click_text(&self, text: &str) -> Result<()> {
        let xpath = format!("//*[self::a or self::button][normalize-space(.)='{text}']");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(found) = self.client.find(Locator::XPath(&xpath)).await {
                if found.is_displayed().await.unwrap_or(false) {
                    found.click().await?;
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: no link or button {text:?}; page says: {}",
                    self.name,
                    self.main_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the field at `css` (cleared first).
    ///
    /// # Errors
    /// Not found in time, or typing failed.
    pub async fn fill(&self, css: &str, text: &str) -> Result<()> {
        let field = self.find(css).await?;
        field.clear().await?;
        field.send_keys(text).await?;
        Ok(())
    }

    /// Chooses the option with `value` in the select at `css`.
    ///
    /// # Errors
    /// Not found in time.
    pub async fn select(&self, css: &str, value: &str) -> Result<()> {
        self.find(css).await?.select_by_value(value).await?;
        Ok(())
    }

    /// Presses keys on whatever has focus, as a keyboard would (WebDriver key actions).
    ///
    /// # Errors
    /// The actions failed.
    pub async fn press(&self, keys: &[char]) -> Result<()> {
        let mut actions = KeyActions::new("keyboard".into());
        for key in keys {
            actions =
                actions.then(KeyAction::Down { value: *key }).then(KeyAction::Up { value: *key });
        }
        self.client.perform_actions(actions).await?;
        Ok(())
    }

    /// Runs JavaScript in the page and returns its value (for reading what is on screen only).
    ///
    /// # Errors
    /// The script failed.
    pub async fn eval(&self, script: &str) -> Result<Value> {
        Ok(self.client.execute(script, vec![]).await?)
    }

    /// The visible text of the page's main area (for failure messages).
    pub async fn main_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => {
                let text = body.text().await.unwrap_or_default();
                text.chars().take(600).collect()
            }
            Err(e) => format!("<unreadable: {e}>"),
        }
    }

    /// Saves a PNG of the window to `dir/{name}.png`.
    ///
    /// # Errors
    /// The screenshot or the write failed.
    pub async fn screenshot_to(&self, dir: &std::path::Path, name: &str) -> Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let png = self.client.screenshot().await?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// A screenshot for docs/web.md, when `MARQUEE_WEB_SCREENSHOTS` names a folder.
    ///
    /// # Errors
    /// The screenshot or the write failed.
    pub async fn doc_shot(&self, name: &str) -> Result<()> {
        if let Some(dir) = std::env::var_os("MARQUEE_WEB_SCREENSHOTS") {
            // Let pending fonts and the live status settle so the picture shows the page.
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.screenshot_to(std::path::Path::new(&dir), name).await?;
        }
        Ok(())
    }
}

/// Runs one behaviour; on failure, saves a screenshot of every page and names the files.
///
/// # Errors
/// The behaviour's own error, with where its screenshots are.
pub async fn behaviour<F>(name: &str, pages: &[&Page], step: F) -> Result<()>
where
    F: std::future::Future<Output = Result<()>>,
{
    eprintln!("behaviour: {name}");
    let started = Instant::now();
    match step.await {
        Ok(()) => {
            eprintln!("behaviour ok: {name} ({:.1} s)", started.elapsed().as_secs_f64());
            Ok(())
        }
        Err(error) => {
            eprintln!("behaviour failed: {name}");
            let mut shots = Vec::new();
            for page in pages {
                match page.screenshot_to(&failure_dir(), &format!("{name}-{}", page.name)).await {
                    Ok(path) => shots.push(path.display().to_string()),
                    Err(e) => shots.push(format!("(no screenshot of {}: {e})", page.name)),
                }
            }
            Err(error
                .context(format!("behaviour {name} failed; screenshots: {}", shots.join(", "))))
        }
    }
}
