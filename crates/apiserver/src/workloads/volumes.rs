//! A dynamic provisioner and the PersistentVolume binder: a claim without a volume gets a
//! PersistentVolume of its size (`pvc-<claim uid>`, host path on the simulated node) and
//! both go `Bound`; a provisioned volume whose claim is gone is deleted (reclaim policy
//! `Delete`, what provisioners default to).

use serde_json::{Value, json};

use super::queue::Key;
use super::util::{is_deleting, meta, str_at};
use super::{Ctx, Outcome, check, gone};

/// The provisioner named on the volumes it creates.
const PROVISIONER: &str = "plumb.dev/host-path";

/// The volume provisioned for a claim (pure).
pub(crate) fn volume_for(claim: &Value) -> Value {
    let name = format!("pvc-{}", meta(claim, "uid"));
    let storage = claim
        .pointer("/spec/resources/requests/storage")
        .cloned()
        .unwrap_or_else(|| json!("1Gi"));
    let modes = claim
        .pointer("/spec/accessModes")
        .cloned()
        .unwrap_or_else(|| json!(["ReadWriteOnce"]));
    let mut volume = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
            "finalizers": ["kubernetes.io/pv-protection"],
        },
        "spec": {
            "capacity": {"storage": storage},
            "accessModes": modes,
            "persistentVolumeReclaimPolicy": "Delete",
            "volumeMode": claim.pointer("/spec/volumeMode").cloned().unwrap_or_else(|| json!("Filesystem")),
            "hostPath": {"path": format!("/var/lib/plumb/volumes/{name}"), "type": ""},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta(claim, "namespace"),
                "name": meta(claim, "name"),
                "uid": meta(claim, "uid"),
            },
        },
    });
    if let Some(class) = claim.pointer("/spec/storageClassName") {
        volume["spec"]["storageClassName"] = class.clone();
    }
    volume
}

/// Reconciles one claim: provisions and binds it if it has no volume yet.
pub(crate) async fn reconcile_claim(ctx: &Ctx, key: &Key) -> Outcome {
    let Some(claim) = ctx.get("/persistentvolumeclaims", &key.namespace, &key.name) else {
        return Ok(None);
    };
    if is_deleting(&claim) || str_at(&claim, "/status/phase") == "Bound" {
        return Ok(None);
    }
    let volume_name = str_at(&claim, "/spec/volumeName").to_string();
    let volume = if volume_name.is_empty() {
        let wanted = volume_for(&claim);
        let name = meta(&wanted, "name").to_string();
        match ctx.get("/persistentvolumes", "", &name) {
            Some(existing) => existing,
            None => {
                let answer = ctx.kcm.create("/api/v1/persistentvolumes", &wanted).await;
                check(&answer, "provisioning a PersistentVolume")?;
                answer.body
            }
        }
    } else {
        // A claim naming a volume binds to it once it exists; until then it stays Pending.
        match ctx.get("/persistentvolumes", "", &volume_name) {
            Some(volume) => volume,
            None => return Ok(None),
        }
    };
    let volume_name = meta(&volume, "name").to_string();
    if str_at(&volume, "/status/phase") != "Bound" {
        let patch = json!({"status": {"phase": "Bound"}});
        let path = format!("/api/v1/persistentvolumes/{volume_name}/status");
        check(
            &ctx.kcm.merge_patch(&path, &patch).await,
            "PersistentVolume status",
        )?;
    }
    let claim_path = format!(
        "/api/v1/namespaces/{}/persistentvolumeclaims/{}",
        key.namespace, key.name
    );
    if str_at(&claim, "/spec/volumeName").is_empty() {
        let patch = json!({
            "metadata": {"annotations": {
                "pv.kubernetes.io/bind-completed": "yes",
                "pv.kubernetes.io/bound-by-controller": "yes",
                "volume.beta.kubernetes.io/storage-provisioner": PROVISIONER,
                "volume.kubernetes.io/storage-provisioner": PROVISIONER,
            }},
            "spec": {"volumeName": volume_name},
        });
        check(
            &ctx.kcm.merge_patch(&claim_path, &patch).await,
            "binding a claim",
        )?;
    }
    let status = json!({"status": {
        "phase": "Bound",
        "accessModes": volume.pointer("/spec/accessModes").cloned().unwrap_or(Value::Null),
        "capacity": volume.pointer("/spec/capacity").cloned().unwrap_or(Value::Null),
    }});
    let answer = ctx
        .kcm
        .merge_patch(&format!("{claim_path}/status"), &status)
        .await;
    if gone(&answer) {
        return Ok(None);
    }
    check(&answer, "claim status").map(|()| None)
}

/// Reconciles one volume: a provisioned one whose claim is gone is deleted.
pub(crate) async fn reconcile_volume(ctx: &Ctx, key: &Key) -> Outcome {
    let Some(volume) = ctx.get("/persistentvolumes", "", &key.name) else {
        return Ok(None);
    };
    if str_at(&volume, "/spec/persistentVolumeReclaimPolicy") != "Delete"
        || super::util::annotation(&volume, "pv.kubernetes.io/provisioned-by") != Some(PROVISIONER)
    {
        return Ok(None);
    }
    let claim_ns = str_at(&volume, "/spec/claimRef/namespace");
    let claim_name = str_at(&volume, "/spec/claimRef/name");
    let claim_uid = str_at(&volume, "/spec/claimRef/uid");
    let claim = ctx.get("/persistentvolumeclaims", claim_ns, claim_name);
    if claim.is_some_and(|c| meta(&c, "uid") == claim_uid) {
        return Ok(None);
    }
    let path = format!("/api/v1/persistentvolumes/{}", key.name);
    if !is_deleting(&volume) {
        let answer = ctx.kcm.delete(&path, None).await;
        if gone(&answer) {
            return Ok(None);
        }
        check(&answer, "deleting a released PersistentVolume")?;
    }
    // The protection finalizer goes once nothing uses the volume (no Pod mounts it here).
    let patch = json!({"metadata": {"finalizers": null}});
    let answer = ctx.kcm.merge_patch(&path, &patch).await;
    if gone(&answer) {
        return Ok(None);
    }
    check(&answer, "releasing a PersistentVolume").map(|()| None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_matches_its_claim() {
        let claim = json!({
            "metadata": {"name": "data", "namespace": "ns", "uid": "abc"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}, "storageClassName": "standard"},
        });
        let volume = volume_for(&claim);
        assert_eq!(volume["metadata"]["name"], "pvc-abc");
        assert_eq!(volume["spec"]["capacity"]["storage"], "5Gi");
        assert_eq!(volume["spec"]["claimRef"]["uid"], "abc");
        assert_eq!(volume["spec"]["storageClassName"], "standard");
        assert_eq!(volume["spec"]["persistentVolumeReclaimPolicy"], "Delete");
    }
}
