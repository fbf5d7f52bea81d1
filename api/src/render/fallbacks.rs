//! `BedrockModel.spec.fallbacks` into each served model's flattened fallback list.
//!
//! A fallback names another BedrockModel of the same namespace, a region, or both. A fallback's
//! own fallbacks follow it (depth first), each target once; references to models that do not
//! exist, fallbacks onto the model itself, kind mismatches and cycles are problems.

use std::collections::BTreeMap;

use super::{describe, name, namespace};
use crate::config::{Fallback, Model, ModelKind};
use crate::crd::BedrockModel;
use crate::crd::model::FallbackSpec;
use crate::problems::{Problem, Problems};

/// Model names by (namespace, name), with the served name of those that rendered.
type Index<'a> = BTreeMap<(&'a str, &'a str), (&'a BedrockModel, Option<String>)>;

/// Fills `fallbacks` of every rendered model from its BedrockModel's `spec.fallbacks`.
pub(super) fn resolve(
    objects: &[&BedrockModel],
    served: &mut BTreeMap<String, Model>,
    problems: &mut Problems,
) {
    let index: Index = objects
        .iter()
        .map(|m| {
            let served_name = format!("{}/{}", m.spec.account_ref, name(&m.metadata));
            let rendered = served.get(&served_name).filter(|s| s.namespace == namespace(&m.metadata));
            ((namespace(&m.metadata), name(&m.metadata)), (*m, rendered.map(|_| served_name)))
        })
        .collect();
    let mut owners = Vec::new();
    for object in objects {
        if object.spec.fallbacks.is_empty() {
            continue;
        }
        let Some((_, Some(own))) = index.get(&(namespace(&object.metadata), name(&object.metadata))) else {
            continue;
        };
        check(object, &index, served, problems);
        if let Some(path) = cycle(object, &index, &mut vec![name(&object.metadata)]) {
            problems.push(Problem::new(
                describe(*object),
                "spec.fallbacks",
                format!("fallbacks form a cycle: {}", path.join(" -> ")),
                "remove one of the fallbacks so that no model falls back to itself through others",
            ));
        }
        owners.push((*object, own.clone()));
    }
    // Flattening follows references, so only once all of them are known to be sound.
    if !problems.is_empty() {
        return;
    }
    for (object, own) in owners {
        let mut chain = Vec::new();
        flatten(object, &index, served, &own, &mut chain);
        if let Some(model) = served.get_mut(&own) {
            model.fallbacks = chain;
        }
    }
}

/// The served name and region one entry of `object` points at; `None` when the model is
/// unknown or did not render.
fn target(
    object: &BedrockModel,
    entry: &FallbackSpec,
    index: &Index,
    served: &BTreeMap<String, Model>,
) -> Option<Fallback> {
    let ns = namespace(&object.metadata);
    let model = entry.model.as_deref().unwrap_or(name(&object.metadata));
    let (_, Some(served_name)) = index.get(&(ns, model))? else { return None };
    let region = match entry.region.as_deref().filter(|r| !r.is_empty()) {
        Some(region) => region.to_owned(),
        None => served.get(served_name)?.region.clone(),
    };
    Some(Fallback { served_name: served_name.clone(), region })
}

/// Problems of the entries themselves: empty, unknown, onto itself, another kind.
fn check(object: &BedrockModel, index: &Index, served: &BTreeMap<String, Model>, problems: &mut Problems) {
    let ns = namespace(&object.metadata);
    let own_name = format!("{}/{}", object.spec.account_ref, name(&object.metadata));
    let own = &served[&own_name];
    if own.kind != ModelKind::Chat {
        problems.push(Problem::new(
            describe(object),
            "spec.fallbacks",
            format!(
                "{} is not a chat model ({:?}); fallbacks serve chat models only",
                own.served_name, own.kind
            ),
            "remove spec.fallbacks: another model's embeddings or image parameters would not match",
        ));
        return;
    }
    for (i, entry) in object.spec.fallbacks.iter().enumerate() {
        let field = format!("spec.fallbacks[{i}]");
        if entry.model.is_none() && entry.region.as_deref().is_none_or(str::is_empty) {
            problems.push(Problem::new(
                describe(object),
                field,
                "the fallback names neither a model nor a region",
                "set model (another BedrockModel of this namespace), region, or both",
            ));
            continue;
        }
        if let Some(model) = &entry.model
            && !index.contains_key(&(ns, model.as_str()))
        {
            problems.push(Problem::new(
                describe(object),
                format!("{field}.model"),
                format!("BedrockModel {model} not found in namespace {ns}"),
                format!("create BedrockModel {model} in namespace {ns}, or name a model there"),
            ));
            continue;
        }
        let Some(fallback) = target(object, entry, index, served) else { continue };
        if fallback.served_name == own.served_name && fallback.region == own.region {
            problems.push(Problem::new(
                describe(object),
                field,
                format!("the fallback is the model itself ({} in {})", own.served_name, own.region),
                "name another model or another region",
            ));
        } else if served[&fallback.served_name].kind != own.kind {
            problems.push(Problem::new(
                describe(object),
                format!("{field}.model"),
                format!(
                    "{} serves {:?} requests but {} serves {:?}",
                    fallback.served_name, served[&fallback.served_name].kind, own.served_name, own.kind
                ),
                "fall back to a model of the same kind",
            ));
        }
    }
}

/// A path of model names from `path[0]` back to itself through `model` fallbacks, if any.
fn cycle<'a>(object: &'a BedrockModel, index: &Index<'a>, path: &mut Vec<&'a str>) -> Option<Vec<String>> {
    let ns = namespace(&object.metadata);
    for next in object.spec.fallbacks.iter().filter_map(|f| f.model.as_deref()) {
        if next == name(&object.metadata) {
            continue;
        }
        if next == path[0] {
            return Some(path.iter().copied().chain([next]).map(str::to_owned).collect());
        }
        if path.contains(&next) {
            // A cycle not through `path[0]`: reported for the models on it.
            continue;
        }
        let Some((next_object, _)) = index.get(&(ns, next)) else { continue };
        path.push(next);
        if let Some(found) = cycle(next_object, index, path) {
            return Some(found);
        }
        path.pop();
    }
    None
}

/// Appends the fallbacks of `object`, each followed by its own, skipping `own` and repeats.
fn flatten(
    object: &BedrockModel,
    index: &Index,
    served: &BTreeMap<String, Model>,
    own: &str,
    chain: &mut Vec<Fallback>,
) {
    let ns = namespace(&object.metadata);
    let own_region = &served[own].region;
    for entry in &object.spec.fallbacks {
        let Some(fallback) = target(object, entry, index, served) else { continue };
        let is_own = fallback.served_name == own && &fallback.region == own_region;
        if !is_own && !chain.contains(&fallback) {
            chain.push(fallback);
        }
        let other = entry.model.as_deref().filter(|m| *m != name(&object.metadata));
        if let Some((next, _)) = other.and_then(|m| index.get(&(ns, m))) {
            flatten(next, index, served, own, chain);
        }
    }
}
