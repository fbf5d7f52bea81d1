#[test]
fn peek() {
    for c in api::crd::crds() {
        println!("{}", api::crd::crd_yaml(&c.crd).unwrap());
    }
}
