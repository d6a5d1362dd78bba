# The bot's texts in English. Variables in braces; plurals through Fluent.

points = { $n ->
    [one] { $n } point
   *[other] { $n } points
}

menu-styles = 🎨 Styles
menu-own = ✍️ Own prompt
menu-two = 🖼 Two photos
menu-profile = 👤 Profile
menu-help = ❓ Help
menu-back = ⬅️ Menu

start-welcome = Hi! I edit photos with the Qwen-Image-Edit model.
    Send a photo and pick a style — or describe in your own words what to change.
    You have { points } to start with.
start-again = Welcome back! You have { points }.
main-menu = What shall we do? Pick a style, write your own prompt, or just send a photo.

cmd-menu = Main menu
cmd-help = How it works
cmd-balance = Balance
cmd-cancel = Cancel what you are doing
cmd-lang = Язык / Language
bot-description = I edit your photos on request: styles, portraits, products, lighting, virtual try-on. Send a photo and choose what to do.
bot-short-description = AI photo editor: styles, portraits, try-on.

categories = Choose a category:
cat-styles = 🎨 Styles
cat-portraits = 🧑 Portraits
cat-products = 📦 Products
cat-lighting = 💡 Lighting
cat-animation = 🧸 Cartoon
cat-enhancement = ✨ Enhance
cat-combine = 🖼 Two photos
category-title = { $category }: choose an effect
page = Page { $page } of { $pages }
nav-prev = ◀️
nav-next = ▶️
nav-back = ⬅️ Back

preset-chosen = { $emoji } { $title }
    { $description }
send-photo = Send a photo (as a file for the best quality).
send-photos = Send { $n } photos one by one or as one album, in the order described above.
send-photo-n = Photo { $got } of { $n } received. Send the next one.
photo-first = Got your photo. What shall I do with it?
photo-first-two = Got { $n } photos. Choose what to do with them:
choose-style = 🎨 Choose a style
write-own = ✍️ Write my own prompt
own-ask = Describe what to change in the photo. For example: "make the sky a sunset" or "add a hat".
own-ask-photo = Send a photo (or two) first, then write what to change.
two-ask = Send two photos one by one or as an album, then write what to do — or pick a ready effect below.
prompt-too-short = The prompt is too short: at least { $min } characters.
prompt-too-long = The prompt is too long: at most { $max } characters.
prompt-refused = I can't do that. Please describe the edit differently.

confirm-card = { $what }
    Price: { points }. Balance: { $balance }.
confirm-free = { $what }
    Free ({ $why }).
free-admin = admin
free-unlimited = unlimited
free-test = test mode
confirm-low = { $what }
    Price: { points }, but your balance is { $balance }. Top up to continue.
what-preset = { $emoji } { $title } — { $n ->
    [one] 1 photo
   *[other] { $n } photos
}
what-own = ✍️ Own prompt: "{ $prompt }"
btn-confirm = ✅ Start
btn-change = 🔁 Change
btn-cancel = ✖️ Cancel
btn-topup = 💳 Top up
cancelled = Cancelled.
nothing-to-cancel = There is nothing to cancel.

queued = ⏳ In the queue: { $position ->
    [0] next
   *[other] number { $position }
}{ $wait ->
    [0] { "" }
   *[other] , about { $wait } s to wait
}.
running = 🎨 Drawing… { $bar } { $percent }%
starting = 🎨 Starting…
btn-cancel-job = ✖️ Cancel
job-cancelled = Cancelled; { points } returned to your balance.
job-cancel-late = Too late to cancel: it is already running.
done = ✅ Done!
failed = 😔 I could not process the photo. { points } returned to your balance. Please try again a bit later.
failed-free = 😔 I could not process the photo. Please try again a bit later.
retrying = ⏳ A small hiccup, trying again…
btn-as-file = 📎 As file
btn-again = 🔄 Another take
btn-another = 🎨 Another style
btn-further = ✏️ Edit further
btn-menu = 🏠 Menu
result-gone = This result has been deleted from the server.
further-ask = The result is now your photo. Pick a style or write what to change.

bad-format = That doesn't look like a photo. Please send a JPEG, PNG or WebP.
bad-heic = I can't read HEIC photos. Send it as a regular photo (not as a file) — Telegram converts it to JPEG.
bad-gif = Animations and GIFs won't work. Please send a regular photo.
bad-video = Videos won't work. Please send a photo.
bad-pdf = PDFs won't work. Please send a photo.
bad-svg = Vector drawings (SVG) won't work. Please send a photo.
bad-too-big = The file is too big. Please send a photo up to { $mb } MB.
bad-too-wide = The image is too large: at most { $side } pixels on a side.
bad-too-many-pixels = The image is too large: at most { $mp } megapixels.
bad-corrupt = The file is damaged or incomplete. Please send it again.
bad-download = I couldn't download the file from Telegram. Please try again.
album-too-big = Too many photos in the album: at most { $max }.
album-mixed = The album has videos or non-photo files — send photos only.

profile = 👤 Profile
    Balance: { points }
    Edits made: { $edits }
    Language: { $lang }
btn-recent = 🕘 Recent edits
btn-payments = 🧾 Payments
btn-promo = 🎟 Promo code
btn-lang = 🌐 Язык: русский
recent-empty = No edits yet.
recent-title = Recent edits (tap to get one again):
payments-empty = No payments yet.
promo-ask = Enter your promo code:
balance = You have { points }.
lang-set = Language: English.

help-support = Support: { $support }
profile-test = 🧪 Test mode: edits are free right now.
help = How it works:
    1. Send a photo (or two, for try-on and combining).
    2. Pick a style or write what to change.
    3. Confirm — the result arrives in seconds.
    A regular edit costs { points }. If anything goes wrong, the points come back.

banned = Your access to this bot is restricted.
slow-down = Too many messages. Please wait a moment.
too-many-jobs = You already have { $n ->
    [one] { $n } edit
   *[other] { $n } edits
} in progress. Please wait for the results.
unknown-input = I didn't get that. Send a photo or press a menu button.
stale-button = This button has expired. Please open the menu again.
not-accepted = ⚠️ This edit did not start: the bot was restarting at that moment. Nothing was charged — please try again.
busy-disk = The server is out of storage space for new photos right now. Nothing was charged — please try again later.
btn-get-result = 📥 Get the result
result-undelivered = ✅ Done, but Telegram did not take the picture just now. Press the button to get it — nothing more is charged.
error-generic = Something went wrong. Please try again.

admin-only = This command is for admins only.
admin-stats = Users: { $users } (active today: { $active })
    Edits today: { $jobs }
    Queue: { $queue }, running: { $running }
    Backends: { $backends }
admin-usage = Usage: { $usage }
admin-done = Done.
admin-topup = Added { points } to user { $user }. Balance: { $balance }.
admin-bad-points = Points must be a whole number from 1 to { $max }.
admin-unknown-user = User { $user } not found.
admin-banned = User { $user } is banned.
admin-unbanned = User { $user } is unbanned.
admin-user-flags = Admin: { $admin } · unlimited: { $unlimited } · banned: { $banned }
admin-yes = yes
admin-no = no
admin-job = { $job }
    User { $user } · { $state } · attempts: { $attempts } · price: { points }
    Backend: { $backend }
    Error: { $error }
admin-unknown-job = Job { $job } not found.
admin-failed = Could not do that: { $reason }
admin-failed-internal = Could not do that; the details are in the service log.
broadcast-report = Broadcast finished: delivered { $sent }, failed { $failed }.

topup-title = 💳 Top up
    Balance: { points }.
    Choose a pack — you pay with Telegram Stars ⭐. Bonus points come with the pack.
topup-off = Top-ups are not available right now. Please check back later.
topup-rate-limited = Too many invoices in a minute. Please wait a little and try again.
pack-points = { points }
pack-points-bonus = { $n } + { $bonus } bonus points
pack-stars = { $what } — { $stars } ⭐
invoice-description = { points } for photo edits in the bot. Credited right after payment.
invoice-description-bonus = { $total } points for photo edits in the bot: { $n } + { $bonus } bonus. Credited right after payment.
checkout-unknown = This invoice was not found. Open Top up in your profile and choose a pack again.
checkout-stale = This invoice has expired or is already paid. Open Top up in your profile and choose a pack again.
checkout-mismatch = The amount does not match the invoice. Open Top up in your profile and choose a pack again.
checkout-off = Top-ups are not available right now. No Stars were charged.
payment-credited = ✅ Payment received: +{ points }. Balance: { $balance }.
payment-later = Payment received. The points will be on your balance within a few minutes.
payment-unmatched = Your payment arrived, but we could not match it to an invoice. Please contact support — we will sort it out.
payments-title = 🧾 Payments:
paid-stars = { $n } ⭐
paid-rub = { $rub } ₽
payment-pending = awaiting payment
payment-canceled = canceled
payment-refunded = refunded
promo-ok = 🎉 Promo code accepted: +{ points }. Balance: { $balance }.
promo-unknown = There is no such promo code. Please check for typos.
promo-used-up = This promo code has been used up.
promo-expired = This promo code has expired.
promo-already = You have already used this promo code.
weekly-notice = 🎁 Weekly bonus: +{ points }. Balance: { $balance }.
btn-notices-off = 🔕 Stop these notices
btn-notices-on = 🔔 Bonus notices: on
btn-notices-off-state = 🔕 Bonus notices: off
notices-stopped = No more weekly bonus notices. You can turn them back on in your profile.
admin-refund = Refunded { $stars } ⭐ to user { $user }; took back { points } ({ $debt } of them as debt). Balance: { $balance }.
admin-refund-already = This payment was refunded before. User { $user } has { $balance }.

topup-card-note = Or pay in rubles by card or SBP — the 💳 buttons.
pack-card = 💳 { $what } — { $rub } ₽, card / SBP
yk-link = { $what } for { $rub } ₽ by card or SBP: pay with the button below. The points come as soon as YooKassa confirms the payment; if they don't, tap "Check payment".
btn-yk-pay = 💳 Pay { $rub } ₽
btn-yk-check = 🔄 Check payment
yk-email-ask = Where should the payment receipt go? Send your e-mail address (asked only once).
yk-email-bad = That does not look like an e-mail address. Send one like name@example.com.
yk-email-saved = Receipts will go to { $email }.
yk-pending = ⏳ The payment has not come through yet. Pay with the link, then tap "Check payment" again.
yk-canceled = This payment was canceled. Choose a pack again for a new link.
yk-already = ✅ This payment is already credited. Balance: { $balance }.
yk-unavailable = Card payments are not available right now. Please try again in a minute — or pay with Telegram Stars.
yk-check-unavailable = Could not check the payment right now. Please try again in a minute; nothing is lost — the points come as soon as the payment is confirmed.
yk-problem = We could not match this payment to your order. Please contact support — we will sort it out.
