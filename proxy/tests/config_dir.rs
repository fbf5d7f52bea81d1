//! `--config-dir`: the operator's documents as files, including the kubelet's `..data` swap.

#[allow(dead_code)]
mod config_support;
mod fixtures;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use api::config::Rendered;
use config_support::{DEMO, Parts, documents, reloads, say, wait_for_models, with_model, without_model};
use http::{Method, StatusCode};
use proxy::config::{ConfigDir, Source};

const POLL: Duration = Duration::from_millis(50);
const WITHIN: Duration = Duration::from_secs(5);

/// Writes `rendered` the way the kubelet updates a projected ConfigMap + Secret volume: a new
/// timestamped folder, `..data` renamed onto it atomically, the old folder removed.
fn kubelet_update(volume: &Path, version: u32, config: &str, credentials: &str) {
    let stamp = format!("..2026_11_25_12_00_{version:02}.000000001");
    std::fs::create_dir(volume.join(&stamp)).unwrap();
    std::fs::write(volume.join(&stamp).join("config.json"), config).unwrap();
    std::fs::write(volume.join(&stamp).join("credentials.json"), credentials).unwrap();
    let old = std::fs::read_link(volume.join("..data")).ok();
    symlink(&stamp, volume.join("..data_tmp")).unwrap();
    std::fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();
    for name in ["config.json", "credentials.json"] {
        if std::fs::symlink_metadata(volume.join(name)).is_err() {
            symlink(Path::new("..data").join(name), volume.join(name)).unwrap();
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(volume.join(old)).unwrap();
    }
}

fn kubelet_update_rendered(volume: &Path, version: u32, rendered: &Rendered) {
    let (config, credentials) = documents(rendered);
    kubelet_update(volume, version, &config, &credentials);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_kubelet_volume_swap_and_keeps_the_last_good_config() {
    let parts = Parts::new().await;
    let volume = parts.dir.join("volume");
    std::fs::create_dir(&volume).unwrap();
    let v1 = parts.rendered.clone();
    kubelet_update_rendered(&volume, 1, &v1);
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
    // missing credentials.
    let (config, credentials) = documents(&v2);
    let mut orphan = v2.clone();
    orphan.config.models.get_mut("demo/llama").unwrap().account = "nobody".into();
    let mut keyless = v2.clone();
    keyless.credentials.accounts.clear();
    let bad = [
        ("{\"version\": 1, \"accounts\": ".to_owned(), credentials.clone()),
        (documents(&orphan).0, credentials.clone()),
        (config.clone(), documents(&keyless).1),
    ];
    for (i, (config, credentials)) in bad.iter().enumerate() {
        kubelet_update(&volume, 3 + i as u32, config, credentials);
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
