//! `GET /pay/{order_id}`: the page the payer opens.

use payments_proto::payments::v1::OrderStatus::{Created, Processing};

use crate::helpers::spawn_system;

#[tokio::test]
async fn opening_the_page_shows_the_order_and_reports_processing() {
    let system = spawn_system(&[]);
    let order_id = system.create_order(1999, "EUR", "Beans <b>bold</b>").await;
    let (status, page) = system.get(&format!("/pay/{order_id}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("19.99 EUR"), "the order's own amount");
    assert!(
        page.contains("Beans &lt;b&gt;bold&lt;/b&gt;"),
        "shopper text is escaped"
    );
    assert!(page.contains(&format!("action=\"/pay/{order_id}\"")));
    assert!(
        !page.contains("name=\"amount\""),
        "the payer cannot submit an amount"
    );
    let stylesheet = system
        .http
        .get(system.url("/assets/mockpay.css"))
        .send()
        .await
        .expect("GET answered");
    assert_eq!(
        stylesheet.headers()["content-type"],
        "text/css; charset=utf-8"
    );
    assert!(
        page.contains("href=\"/assets/mockpay.css\""),
        "the page links the stylesheet it is served with"
    );
    assert_eq!(system.statuses(&order_id).await, [Created, Processing]);
    system.get(&format!("/pay/{order_id}")).await;
    assert_eq!(
        system.statuses(&order_id).await,
        [Created, Processing],
        "opening it again changes nothing"
    );
}
