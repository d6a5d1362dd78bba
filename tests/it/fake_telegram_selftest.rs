//! The fake Bot API driven by teloxide's own client: every answer shape must parse, the fake must
//! record what the bot did, and the faults must look like Telegram's.

use std::io::Cursor;
use std::time::{Duration, Instant};

use teloxide::net::Download;
use teloxide::prelude::*;
use teloxide::types::{
    AllowedUpdate, CallbackQueryId, InlineKeyboardButton, InlineKeyboardMarkup, InputFile,
    InputMedia, InputMediaPhoto, LabeledPrice, MessageEntityKind, MessageId, ParseMode,
    TelegramTransactionId, UpdateKind,
};
use teloxide::{ApiError, RequestError};

use crate::support::fake_telegram::{AlbumItem, BotMessageKind, FakeTelegram};

const ALICE: i64 = 1001;

fn bot(fake: &FakeTelegram) -> Bot {
    Bot::new(FakeTelegram::TOKEN).set_api_url(fake.api_url())
}

fn image(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 120]));
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    image(width, height, image::ImageFormat::Jpeg)
}

/// Fetches what is queued now and confirms it with the next call's offset.
async fn fetch(bot: &Bot, offset: &mut i32) -> Vec<Update> {
    let updates = bot.get_updates().offset(*offset).timeout(0).await.unwrap();
    if let Some(last) = updates.last() {
        *offset = last.id.0 as i32 + 1;
    }
    updates
}

async fn download(bot: &Bot, file_id: &teloxide::types::FileId) -> Vec<u8> {
    let file = bot.get_file(file_id.clone()).await.unwrap();
    let mut bytes = Vec::new();
    bot.download_file(&file.path, &mut bytes).await.unwrap();
    assert_eq!(bytes.len(), file.size as usize);
    bytes
}

fn message(update: &Update) -> &Message {
    match &update.kind {
        UpdateKind::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test]
async fn conversation_with_keyboard_edits_and_callback() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake);
    let chat = ChatId(ALICE);

    let me = bot.get_me().await.unwrap();
    assert_eq!(me.username(), "qwenedit_test_bot");
    assert!(me.is_bot);
    bot.delete_webhook().await.unwrap();

    fake.send_text(ALICE, "/start promo");
    let mut offset = 0;
    let updates = fetch(&bot, &mut offset).await;
    assert_eq!(updates.len(), 1);
    let start = message(&updates[0]);
    assert_eq!(start.text(), Some("/start promo"));
    assert_eq!(start.chat.id, chat);
    assert_eq!(
        start.from.as_ref().unwrap().language_code.as_deref(),
        Some("ru")
    );
    let entity = &start.entities().unwrap()[0];
    assert_eq!(
        (entity.kind.clone(), entity.offset, entity.length),
        (MessageEntityKind::BotCommand, 0, 6)
    );

    let keyboard = InlineKeyboardMarkup::new([[
        InlineKeyboardButton::callback("✅ Start", "start"),
        InlineKeyboardButton::callback("Help", "help"),
    ]]);
    let sent = bot
        .send_message(chat, "Hello")
        .reply_markup(keyboard.clone())
        .await
        .unwrap();
    assert_eq!(sent.text(), Some("Hello"));
    assert!(sent.from.as_ref().unwrap().is_bot);
    let shown = fake.last_message(ALICE);
    assert_eq!(
        (shown.id, shown.kind, shown.text.as_str()),
        (sent.id.0, BotMessageKind::Text, "Hello")
    );
    assert!(shown.kind == "text");
    assert_eq!(
        shown.keyboard,
        vec![vec![
            ("✅ Start".to_owned(), "start".to_owned()),
            ("Help".into(), "help".into())
        ]]
    );
    assert_eq!(shown.callback_data("Start"), "start");

    let edited = bot
        .edit_message_text(chat, sent.id, "Hello again")
        .reply_markup(keyboard.clone())
        .await
        .unwrap();
    assert_eq!(edited.text(), Some("Hello again"));
    assert!(edited.edit_date().is_some());
    let again = bot
        .edit_message_text(chat, sent.id, "Hello again")
        .reply_markup(keyboard.clone())
        .await;
    assert!(
        matches!(again, Err(RequestError::Api(ApiError::MessageNotModified))),
        "{again:?}"
    );
    let gone = bot.edit_message_text(chat, MessageId(999), "x").await;
    assert!(
        matches!(
            gone,
            Err(RequestError::Api(ApiError::MessageToEditNotFound))
        ),
        "{gone:?}"
    );

    fake.press(ALICE, sent.id.0, "start");
    let updates = fetch(&bot, &mut offset).await;
    let UpdateKind::CallbackQuery(query) = &updates[0].kind else {
        panic!("{:?}", updates[0])
    };
    assert_eq!(query.data.as_deref(), Some("start"));
    assert_eq!(query.from.id, UserId(ALICE as u64));
    let pressed = query.message.as_ref().unwrap().regular_message().unwrap();
    assert_eq!(pressed.id, sent.id);
    bot.answer_callback_query(query.id.clone())
        .text("Started")
        .await
        .unwrap();
    let twice = bot.answer_callback_query(query.id.clone()).await;
    assert!(twice.is_err());
    let stale = bot
        .answer_callback_query(CallbackQueryId("nope".into()))
        .await;
    assert!(stale.is_err());

    // Editing text without reply_markup removes the keyboard, as Telegram does.
    bot.edit_message_text(chat, sent.id, "Done").await.unwrap();
    assert!(fake.last_message(ALICE).keyboard.is_empty());
    bot.send_message(chat, "<b>Bold</b> &lt;tag&gt;")
        .parse_mode(ParseMode::Html)
        .await
        .unwrap();
    assert_eq!(fake.last_message(ALICE).text, "Bold <tag>");
    let broken = bot
        .send_message(chat, "a <br> b")
        .parse_mode(ParseMode::Html)
        .await;
    assert!(
        matches!(
            broken,
            Err(RequestError::Api(ApiError::CantParseEntities(_)))
        ),
        "{broken:?}"
    );
    let unescaped = bot
        .send_message(chat, "Price: 5.00")
        .parse_mode(ParseMode::MarkdownV2)
        .await;
    assert!(
        matches!(
            unescaped,
            Err(RequestError::Api(ApiError::CantParseEntities(_)))
        ),
        "{unescaped:?}"
    );
    bot.send_message(chat, "*Price:* 5\\.00")
        .parse_mode(ParseMode::MarkdownV2)
        .await
        .unwrap();
    assert_eq!(fake.last_message(ALICE).text, "Price: 5.00");
    let deleted = bot.send_message(chat, "temporary").await.unwrap();
    bot.delete_message(chat, deleted.id).await.unwrap();
    let twice = bot.delete_message(chat, deleted.id).await;
    assert!(
        matches!(
            twice,
            Err(RequestError::Api(ApiError::MessageToDeleteNotFound))
        ),
        "{twice:?}"
    );
    bot.send_chat_action(chat, teloxide::types::ChatAction::UploadPhoto)
        .await
        .unwrap();

    insta::assert_snapshot!(fake.transcript(ALICE), @r#"
    > /start promo
    < Hello
      [✅ Start] [Help]
    <~ Hello again
      [✅ Start] [Help]
    > [press "✅ Start"]
    <! Started
    <~ Done
    < Bold <tag>
    < Price: 5.00
    < temporary
    <x temporary
    "#);

    let methods: Vec<String> = fake.calls().into_iter().map(|c| c.method).collect();
    assert!(methods.starts_with(&[
        "getMe".to_owned(),
        "deleteWebhook".to_owned(),
        "getUpdates".to_owned()
    ]));
    let call = fake
        .wait_for_call("SENDMESSAGE", |p| p["text"] == "Hello")
        .await;
    assert_eq!(call.params["chat_id"], ALICE);
    assert_eq!(
        call.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        "start"
    );
}

#[tokio::test]
async fn photos_documents_albums_and_downloads() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake);
    let chat = ChatId(ALICE);
    let mut offset = 0;

    let photo = jpeg(640, 480);
    fake.send_photo(ALICE, photo.clone());
    fake.send_document(ALICE, b"\x89PNG fake".to_vec(), "original.png", "image/png");
    fake.send_album(ALICE, vec![jpeg(320, 240), jpeg(240, 320)]);
    fake.send_album_mixed(
        ALICE,
        vec![AlbumItem::Photo(jpeg(100, 100)), AlbumItem::Video],
    );
    let updates = fetch(&bot, &mut offset).await;
    assert_eq!(updates.len(), 6);

    let sizes = message(&updates[0]).photo().unwrap();
    assert_eq!(sizes.len(), 2);
    let full = sizes.last().unwrap();
    assert_eq!(
        (full.width, full.height, full.file.size as usize),
        (640, 480, photo.len())
    );
    assert!(sizes[0].width <= 90 && sizes[0].height <= 90);
    assert_eq!(download(&bot, &full.file.id).await, photo);
    assert_ne!(download(&bot, &sizes[0].file.id).await, photo);

    let document = message(&updates[1]).document().unwrap();
    assert_eq!(document.file_name.as_deref(), Some("original.png"));
    assert_eq!(
        document.mime_type.as_ref().unwrap().essence_str(),
        "image/png"
    );
    assert_eq!(download(&bot, &document.file.id).await, b"\x89PNG fake");

    let groups: Vec<_> = updates[2..]
        .iter()
        .map(|u| message(u).media_group_id().cloned())
        .collect();
    assert!(groups.iter().all(Option::is_some));
    assert_eq!(groups[0], groups[1]);
    assert_eq!(groups[2], groups[3]);
    assert_ne!(groups[0], groups[2]);
    assert!(message(&updates[5]).video().is_some());

    let result = jpeg(800, 600);
    let sent = bot
        .send_photo(chat, InputFile::memory(result.clone()))
        .caption("Ready")
        .await
        .unwrap();
    assert_eq!(sent.caption(), Some("Ready"));
    let sent_full = sent.photo().unwrap().last().unwrap();
    assert_eq!((sent_full.width, sent_full.height), (800, 600));
    assert_eq!(download(&bot, &sent_full.file.id).await, result);
    let shown = fake.last_message(ALICE);
    assert_eq!(
        (shown.kind, shown.size, shown.text.as_str()),
        (BotMessageKind::Photo, Some((800, 600)), "Ready")
    );
    assert_eq!(shown.file.as_deref(), Some(&result[..]));
    let call = fake.wait_for_call("sendPhoto", |_| true).await;
    assert_eq!(call.params["photo"]["file"], result.len());
    assert_eq!(call.params["caption"], "Ready");
    assert_eq!(call.params["chat_id"], ALICE);

    let png = image(300, 200, image::ImageFormat::Png);
    let doc = bot
        .send_document(chat, InputFile::memory(png.clone()).file_name("full.png"))
        .caption("Full")
        .await
        .unwrap();
    assert_eq!(
        doc.document().unwrap().file_name.as_deref(),
        Some("full.png")
    );
    let shown = fake.last_message(ALICE);
    assert_eq!(
        (shown.kind, shown.file_name.as_deref()),
        (BotMessageKind::Document, Some("full.png"))
    );
    assert_eq!(shown.file.as_deref(), Some(&png[..]));

    // Re-sending a known file id and an album.
    bot.send_photo(chat, InputFile::file_id(full.file.id.clone()))
        .await
        .unwrap();
    assert_eq!(fake.last_message(ALICE).file.as_deref(), Some(&photo[..]));
    let album = bot
        .send_media_group(
            chat,
            [
                InputMedia::Photo(InputMediaPhoto::new(InputFile::memory(jpeg(64, 48)))),
                InputMedia::Photo(
                    InputMediaPhoto::new(InputFile::memory(jpeg(48, 64))).caption("two"),
                ),
            ],
        )
        .await
        .unwrap();
    assert_eq!(album.len(), 2);
    assert_eq!(album[0].media_group_id(), album[1].media_group_id());

    let too_wide = image(10_001, 1, image::ImageFormat::Png);
    let rejected = bot.send_photo(chat, InputFile::memory(too_wide)).await;
    let Err(RequestError::Api(ApiError::Unknown(text))) = rejected else {
        panic!("{rejected:?}")
    };
    assert_eq!(text, "Bad Request: PHOTO_INVALID_DIMENSIONS");

    insta::assert_snapshot!(fake.transcript(ALICE), @r#"
    > [photo 640x480]
    > [document original.png image/png]
    > [photo 320x240 in album]
    > [photo 240x320 in album]
    > [photo 100x100 in album]
    > [video in album]
    < [photo 800x600] Ready
    < [document full.png] Full
    < [photo 640x480]
    < [photo 64x48]
    < [photo 48x64] two
    "#);
}

#[tokio::test]
async fn long_polling_offsets_and_update_filters() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake);

    // A parked long poll answers as soon as an update arrives.
    let poller = {
        let bot = bot.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let updates = bot.get_updates().timeout(10).await.unwrap();
            (updates, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    fake.send_text(ALICE, "hi");
    let (updates, took) = poller.await.unwrap();
    assert_eq!(updates.len(), 1);
    assert!(took < Duration::from_secs(3), "{took:?}");
    let first_id = updates[0].id.0 as i32;

    // Unconfirmed updates come again; the offset confirms them.
    assert_eq!(bot.get_updates().await.unwrap().len(), 1);
    let started = Instant::now();
    let none = bot
        .get_updates()
        .offset(first_id + 1)
        .timeout(1)
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));

    // limit, then a repeat of the same update id.
    fake.send_text(ALICE, "one");
    fake.send_text(ALICE, "two");
    let one = bot
        .get_updates()
        .offset(first_id + 1)
        .limit(1)
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    let mut offset = first_id + 1;
    let both = fetch(&bot, &mut offset).await;
    assert_eq!(both.len(), 2);
    fake.repeat_last_update();
    let repeated = fetch(&bot, &mut offset).await;
    assert_eq!(repeated.len(), 1);
    assert_eq!(repeated[0].id, both[1].id);
    assert!(fetch(&bot, &mut offset).await.is_empty());

    // allowed_updates filters what Telegram sends; raw updates always arrive.
    bot.get_updates()
        .offset(offset)
        .allowed_updates([AllowedUpdate::Message])
        .await
        .unwrap();
    fake.press(ALICE, 1, "ignored");
    fake.set_language(ALICE, "en");
    fake.send_text(ALICE, "after");
    fake.send_raw_update(serde_json::json!({ "brand_new_kind": { "x": 1 } }));
    let updates = fetch(&bot, &mut offset).await;
    assert_eq!(updates.len(), 2, "{updates:?}");
    let after = message(&updates[0]);
    assert_eq!(after.text(), Some("after"));
    assert_eq!(
        after.from.as_ref().unwrap().language_code.as_deref(),
        Some("en")
    );
    assert!(matches!(updates[1].kind, UpdateKind::Error(_)));

    // A second poller terminates the first with 409 Conflict.
    let parked = {
        let bot = bot.clone();
        tokio::spawn(async move { bot.get_updates().offset(offset).timeout(10).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = bot.get_updates().offset(offset).await.unwrap();
    assert!(second.is_empty());
    let first = parked.await.unwrap();
    assert!(
        matches!(
            first,
            Err(RequestError::Api(ApiError::TerminatedByOtherGetUpdates))
        ),
        "{first:?}"
    );

    // deleteWebhook with drop_pending_updates loses what was queued, as on Telegram.
    fake.send_text(ALICE, "lost");
    bot.delete_webhook()
        .drop_pending_updates(true)
        .await
        .unwrap();
    assert!(fetch(&bot, &mut offset).await.is_empty());
}

#[tokio::test]
async fn faults_look_like_telegram() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake);
    let chat = ChatId(ALICE);

    // Real Telegram says "Forbidden: ..."; teloxide only knows the old "Unauthorized: ..." text.
    let stranger = bot.send_message(ChatId(777), "hello?").await;
    let Err(RequestError::Api(ApiError::Unknown(text))) = stranger else {
        panic!("{stranger:?}")
    };
    assert_eq!(
        text,
        "Forbidden: bot can't initiate conversation with a user"
    );
    fake.send_text(ALICE, "/start");

    fake.fail_next(
        "sendMessage",
        429,
        "Too Many Requests: retry after 3",
        Some(3),
    );
    let limited = bot.send_message(chat, "x").await;
    assert!(
        matches!(limited, Err(RequestError::RetryAfter(s)) if s.seconds() == 3),
        "{limited:?}"
    );
    bot.send_message(chat, "x").await.unwrap();

    fake.fail_get_updates(1);
    let dropped = bot.get_updates().await;
    assert!(
        matches!(dropped, Err(RequestError::Network(_))),
        "{dropped:?}"
    );
    assert_eq!(bot.get_updates().await.unwrap().len(), 1);

    fake.send_photo(ALICE, jpeg(64, 64));
    let updates = bot.get_updates().await.unwrap();
    let photo = message(updates.last().unwrap())
        .photo()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let file = bot.get_file(photo.file.id.clone()).await.unwrap();
    fake.fail_file_downloads(1);
    let mut partial = Vec::new();
    assert!(bot.download_file(&file.path, &mut partial).await.is_err());
    assert_eq!(
        download(&bot, &photo.file.id).await.len(),
        photo.file.size as usize
    );
    let unknown = bot.get_file(teloxide::types::FileId("nope".into())).await;
    assert!(unknown.is_err());

    let wrong = Bot::new("1:wrong")
        .set_api_url(fake.api_url())
        .get_me()
        .await;
    assert!(
        matches!(wrong, Err(RequestError::Api(ApiError::InvalidToken))),
        "{wrong:?}"
    );

    let client = reqwest::Client::new();
    let url = fake
        .api_url()
        .join(&format!("./bot{}/noSuchMethod", FakeTelegram::TOKEN))
        .unwrap();
    let answer = client
        .post(url)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"})
    );

    let url = fake
        .api_url()
        .join(&format!("./bot{}/SENDMESSAGE", FakeTelegram::TOKEN))
        .unwrap();
    let form = [("chat_id", ALICE.to_string()), ("text", "form".to_owned())];
    let answer: serde_json::Value = client
        .post(url)
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["result"]["text"], "form");
    assert!(
        fake.calls()
            .iter()
            .any(|c| c.method == "sendMessage" && c.params["chat_id"] == ALICE)
    );

    fake.block_bot(ALICE);
    let blocked = bot.send_message(chat, "still there?").await;
    assert!(
        matches!(blocked, Err(RequestError::Api(ApiError::BotBlocked))),
        "{blocked:?}"
    );
}

#[tokio::test]
async fn stars_payments() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake);
    let chat = ChatId(ALICE);
    let mut offset = 0;
    fake.send_text(ALICE, "/buy");
    fetch(&bot, &mut offset).await;

    let invoice = bot
        .send_invoice(
            chat,
            "100 points",
            "Points for photo edits",
            "order-1",
            "XTR",
            [LabeledPrice::new("Points", 50)],
        )
        .await
        .unwrap();
    assert_eq!(invoice.invoice().unwrap().total_amount, 50);
    let shown = fake.last_message(ALICE);
    assert_eq!(shown.kind, BotMessageKind::Invoice);
    let info = shown.invoice.unwrap();
    assert_eq!(
        (info.payload.as_str(), info.amount, info.currency.as_str()),
        ("order-1", 50, "XTR")
    );
    let two_prices = bot
        .send_invoice(
            chat,
            "t",
            "d",
            "p",
            "XTR",
            [LabeledPrice::new("a", 1), LabeledPrice::new("b", 1)],
        )
        .await;
    assert!(two_prices.is_err());

    let query_id = fake.pre_checkout(ALICE, "order-1", "XTR", 50);
    let updates = fetch(&bot, &mut offset).await;
    let UpdateKind::PreCheckoutQuery(query) = &updates[0].kind else {
        panic!("{:?}", updates[0])
    };
    assert_eq!(query.id.0, query_id);
    assert_eq!(
        (query.invoice_payload.as_str(), query.total_amount),
        ("order-1", 50)
    );
    bot.answer_pre_checkout_query(query.id.clone(), true)
        .await
        .unwrap();
    assert!(
        bot.answer_pre_checkout_query(query.id.clone(), true)
            .await
            .is_err()
    );

    fake.successful_payment(ALICE, "order-1", "XTR", 50, "charge-1");
    let updates = fetch(&bot, &mut offset).await;
    let paid = message(&updates[0]).successful_payment().unwrap();
    assert_eq!(paid.telegram_payment_charge_id.0, "charge-1");
    assert_eq!(
        (paid.invoice_payload.as_str(), paid.total_amount),
        ("order-1", 50)
    );

    let list = bot.get_star_transactions().await.unwrap();
    assert_eq!(list.transactions.len(), 1);
    assert_eq!(
        (
            list.transactions[0].id.0.as_str(),
            list.transactions[0].amount
        ),
        ("charge-1", 50)
    );
    let charge = TelegramTransactionId("charge-1".into());
    bot.refund_star_payment(UserId(ALICE as u64), charge.clone())
        .await
        .unwrap();
    assert!(
        bot.refund_star_payment(UserId(ALICE as u64), charge)
            .await
            .is_err()
    );
    assert_eq!(
        bot.get_star_transactions()
            .await
            .unwrap()
            .transactions
            .len(),
        2
    );

    insta::assert_snapshot!(fake.transcript(ALICE), @r#"
    > /buy
    < [invoice "100 points" 50 XTR] Points for photo edits
    > [checkout 50 XTR]
    <$ checkout ok
    > [paid 50 XTR]
    <$ refund 50 XTR
    "#);
}

#[tokio::test]
async fn waiting_for_a_running_bot() {
    let fake = FakeTelegram::start().await;
    let bot = bot(&fake);
    let echo = tokio::spawn(async move {
        let mut offset = 0;
        loop {
            let Ok(updates) = bot.get_updates().offset(offset).timeout(5).await else {
                continue;
            };
            for update in updates {
                offset = update.id.0 as i32 + 1;
                if let UpdateKind::Message(m) = update.kind
                    && let Some(text) = m.text()
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    bot.send_message(m.chat.id, format!("echo: {text}"))
                        .await
                        .unwrap();
                }
            }
        }
    });

    fake.send_text(ALICE, "one");
    let reply = fake
        .wait_for_message(ALICE, |m| m.text.contains("one"))
        .await;
    assert_eq!(reply.text, "echo: one");
    fake.send_text(ALICE, "two");
    fake.send_text(ALICE, "three");
    fake.wait_idle().await;
    assert_eq!(fake.last_message(ALICE).text, "echo: three");
    let call = fake
        .wait_for_call("sendMessage", |p| p["text"] == "echo: two")
        .await;
    assert_eq!(call.params["chat_id"], ALICE);
    let sends: Vec<Instant> = fake
        .calls()
        .into_iter()
        .filter(|c| c.method == "sendMessage")
        .map(|c| c.time)
        .collect();
    assert_eq!(sends.len(), 3);
    assert!(sends.windows(2).all(|w| w[0] <= w[1]));
    let texts: Vec<String> = fake.messages(ALICE).into_iter().map(|m| m.text).collect();
    assert_eq!(texts, ["echo: one", "echo: two", "echo: three"]);
    // "two" and "three" were queued together, so the bot fetched them in one batch.
    assert_eq!(
        fake.transcript(ALICE),
        "> one\n< echo: one\n> two\n> three\n< echo: two\n< echo: three"
    );
    echo.abort();
}
