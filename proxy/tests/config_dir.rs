//! `--config-dir`: the operator's documents as files, including the kubelet's `..data` swap.

#[allow(dead_code)]
mod config_support;
mod fixtures;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use api::config::{CONFIG_FILE, CONFIG_GZ_FILE, CREDENTIALS_FILE, Rendered};
use config_support::{DEMO, Parts, documents, reloads, say, wait_for_models, with_model, without_model};
use http::{Method, StatusCode};
use proxy::config::{ConfigDir, Source};

const POLL: Duration = Duration::from_millis(50);
const WITHIN: Duration = Duration::from_secs(5);

/// Writes `files` (name, content) the way the kubelet updates a projected ConfigMap + Secret
/// volume: a new timestamped folder, `..data` renamed onto it atomically, a top-level link per
/// key (links of keys that are gone removed), the old folder removed.
fn kubelet_update(volume: &Path, version: u32, files: &[(&str, impl AsRef<[u8]>)]) {
    let stamp = format!("..2026_11_25_12_00_{version:02}.000000001");
    std::fs::create_dir(volume.join(&stamp)).unwrap();
    for (name, content) in files {
        std::fs::write(volume.join(&stamp).join(name), content.as_ref()).unwrap();
    }
    let old = std::fs::read_link(volume.join("..data")).ok();
    symlink(&stamp, volume.join("..data_tmp")).unwrap();
    std::fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();
    for name in [CONFIG_GZ_FILE, CONFIG_FILE, CREDENTIALS_FILE] {
        let wanted = files.iter().any(|(n, _)| *n == name);
        let linked = std::fs::symlink_metadata(volume.join(name)).is_ok();
        if wanted && !linked {
            symlink(Path::new("..data").join(name), volume.join(name)).unwrap();
        } else if !wanted && linked {
            std::fs::remove_file(volume.join(name)).unwrap();
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(volume.join(old)).unwrap();
    }
}

/// A kubelet update of `rendered` as the operator stores it: the config gzip-compressed.
fn kubelet_update_rendered(volume: &Path, version: u32, rendered: &Rendered) {
    let (config, credentials) = documents(rendered);
    let gz = api::gzip::compress(config.as_bytes());
    kubelet_update(
        volume,
        version,
        &[(CONFIG_GZ_FILE, gz.as_slice()), (CREDENTIALS_FILE, credentials.as_bytes())],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_kubelet_volume_swap_and_keeps_the_last_good_config() {
    let parts = Parts::new().await;
    let volume = parts.dir.join("volume");
    std::fs::create_dir(&volume).unwrap();
    let v1 = parts.rendered.clone();
    // First the plain-JSON form an older operator wrote; from v2 on the gzip form: both are read.
    let (config, credentials) = documents(&v1);
    kubelet_update(
        &volume,
        1,
        &[(CONFIG_FILE, config.as_bytes()), (CREDENTIALS_FILE, credentials.as_bytes())],
    );
    tokio::spawn(Source::Files(ConfigDir::new(&volume, POLL)).run(parts.publisher.clone()));
    let h = parts.serve().await;
    wait_for_models(&h, &DEMO, WITHIN).await;

    // A swap that adds a model and removes one is served as a whole.
    let v2 =
        without_model(&with_model(&v1, "demo/llama", "meta.llama3-1-70b-instruct-v1:0"), "demo/team-profile");
    kubelet_update_rendered(&volume, 2, &v2);
    wait_for_models(&h, &["demo/claude-sonnet", "demo/llama", "demo/nova-lite"], WITHIN).await;
    let r = h.chat(say("demo/llama", "Hello there")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(h.sim.requests().iter().any(|q| q.path.contains("meta.llama3-1-70b-instruct-v1%3A0")));
    assert_eq!(reloads(&h, "success").await, 2);

    // Invalid documents are each counted and change nothing: bad JSON, an unknown account,
    // missing credentials, a config.json.gz that is not gzip, both forms at once.
    let (config, credentials) = documents(&v2);
    let gz = |json: &str| api::gzip::compress(json.as_bytes());
    let mut orphan = v2.clone();
    orphan.config.models.get_mut("demo/llama").unwrap().account = "nobody".into();
    let mut keyless = v2.clone();
    keyless.credentials.accounts.clear();
    let keys = (CREDENTIALS_FILE, credentials.clone().into_bytes());
    let cases = [
        vec![(CONFIG_GZ_FILE, gz("{\"version\": 1, \"accounts\": ")), keys.clone()],
        vec![(CONFIG_GZ_FILE, gz(&documents(&orphan).0)), keys.clone()],
        vec![(CONFIG_GZ_FILE, gz(&config)), (CREDENTIALS_FILE, documents(&keyless).1.into_bytes())],
        vec![(CONFIG_GZ_FILE, config.clone().into_bytes()), keys.clone()],
        vec![(CONFIG_GZ_FILE, gz(&config)), (CONFIG_FILE, config.clone().into_bytes()), keys],
    ];
    for (i, files) in cases.iter().enumerate() {
        kubelet_update(&volume, 3 + i as u32, files);
        wait_for_errors(&h, i as u64 + 1).await;
        assert_eq!(config_support::models(&h).await, ["demo/claude-sonnet", "demo/llama", "demo/nova-lite"]);
        let r = h.chat(say("demo/llama", "still here")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    assert_eq!(reloads(&h, "success").await, 2);

    // Fixing the volume applies the next good version.
    kubelet_update_rendered(&volume, 9, &v1);
    wait_for_models(&h, &DEMO, WITHIN).await;
    assert_eq!(reloads(&h, "success").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_running_across_twenty_swaps_never_fail() {
    let parts = Parts::new().await;
    let volume = parts.dir.join("volume");
    std::fs::create_dir(&volume).unwrap();
    let v1 = parts.rendered.clone();
    let v2 = with_model(&v1, "demo/llama", "meta.llama3-1-70b-instruct-v1:0");
    kubelet_update_rendered(&volume, 1, &v1);
    tokio::spawn(Source::Files(ConfigDir::new(&volume, POLL)).run(parts.publisher.clone()));
    let h = std::sync::Arc::new(parts.serve().await);
    wait_for_models(&h, &DEMO, WITHIN).await;

    // Two clients call a model every config serves, back to back, for the whole run.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (h, stop) = (h.clone(), stop.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                let mut calls = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let r = h.chat(say("demo/claude-sonnet", "steady")).await;
                    calls += 1;
                    if r.status != StatusCode::OK {
                        failures.push((r.status, r.text()));
                    }
                }
                (calls, failures)
            })
        })
        .collect();
    // Alternate two configs, the second form (plain JSON) in between, each swap served before the next.
    for swap in 2..22u32 {
        if swap % 2 == 0 {
            let (config, credentials) = documents(&v2);
            kubelet_update(&volume, swap, &[(CONFIG_FILE, config), (CREDENTIALS_FILE, credentials)]);
            wait_for_models(
                &h,
                &["demo/claude-sonnet", "demo/llama", "demo/nova-lite", "demo/team-profile"],
                WITHIN,
            )
            .await;
        } else {
            kubelet_update_rendered(&volume, swap, &v1);
            wait_for_models(&h, &DEMO, WITHIN).await;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for client in clients {
        let (calls, failures) = client.await.unwrap();
        assert!(calls > 0, "the client ran");
        assert!(
            failures.is_empty(),
            "{} of {calls} calls failed during the swaps: {failures:?}",
            failures.len()
        );
    }
    assert_eq!((reloads(&h, "success").await, reloads(&h, "error").await), (21, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_the_files_appear() {
    let parts = Parts::new().await;
    let folder = parts.dir.join("plain");
    std::fs::create_dir(&folder).unwrap();
    let (config, credentials) = documents(&parts.rendered);
    tokio::spawn(Source::Files(ConfigDir::new(&folder, POLL)).run(parts.publisher.clone()));
    let h = parts.serve().await;
    let r = h.call(Method::GET, "/readyz", None, None).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "no config loaded\n"));
    let r = h.chat(say("demo/nova-lite", "Hello there")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    wait_for_errors(&h, 1).await;

    // A plain folder (no `..data`): files written in place are picked up.
    std::fs::write(folder.join("credentials.json"), credentials).unwrap();
    std::fs::write(folder.join("config.json"), config).unwrap();
    wait_for_models(&h, &DEMO, WITHIN).await;
    assert_eq!(h.call(Method::GET, "/readyz", None, None).await.status, StatusCode::OK);
}

async fn wait_for_errors(h: &fixtures::Harness, n: u64) {
    for _ in 0..100 {
        if reloads(h, "error").await >= n {
            assert_eq!(reloads(h, "error").await, n);
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("config_reloads_total{{result=\"error\"}} did not reach {n}");
}
