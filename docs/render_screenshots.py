"""Pictures of the slash commands as Discord shows them, from the bot's real replies.

    apt-get install -y chromium            # Debian's headless browser, once
    python docs/render_screenshots.py      # from the repository root

The real bot runs against the fake Discord of the end-to-end tests (fake_discord/), which
records every message, embed, attachment and button the bot sends. A few commands are run
on the bundled corpora, their final messages are written to docs/images/screens.json, and
each one is drawn by a small Discord look-alike (HTML and CSS below: dark theme, embeds,
code blocks with ANSI colours, buttons) and photographed by headless Chromium at a desktop
width (1000 px) and a phone width (390 px) into docs/images/screen_*_{desktop,phone}.png.
Nothing is drawn by hand: change a reply in the bot, run this again, and the pictures follow.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image, ImageChops

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.app import MarkovBot, open_servers  # noqa: E402
from bot.services.settings import load_settings  # noqa: E402
from fake_discord import basic_world, running_bot, started_fake  # noqa: E402

IMAGES = ROOT / "docs" / "images"
TOKEN = "fake-bot-token.for-the-screenshots"
WIDTHS = {"desktop": (1000, 1), "phone": (390, 2)}  # CSS pixels, device scale
BACKGROUND = (49, 51, 56)  # Discord's dark chat background, #313338
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]

#: (file stem, command, options, buttons pressed afterwards)
SCREENS: list[tuple[str, str, dict[str, Any], list[str]]] = [
    ("explain", "markov-explain", {"word": "When", "temp": 0.5, "corpus": "burns"}, []),
    ("compare", "markov-compare", {"start": "When", "seed": 1, "corpus": "burns"}, []),
    (
        "show_work",
        "markov",
        {"start": "When", "temp": 0.5, "seed": 1, "length": 12, "corpus": "burns"},
        [],
    ),
    ("step", "markov-step", {"start": "the", "seed": 5, "corpus": "tiny-lesson"}, ["step-sample"]),
]
SHOW_WORK = {"show_work": True}


async def record(workdir: Path) -> list[dict[str, Any]]:
    """Run each command through the fake with the real bot; its final message, the
    command line a member typed, and the attached images as data URLs."""
    settings = load_settings(
        {"MARKOV_DB": str(workdir / "markov.db"), "DISCORD_TOKEN": TOKEN}, dotenv_path=None
    )
    screens = []
    async with started_fake(token=TOKEN) as fake:
        world = basic_world(fake)
        async with open_servers(settings) as servers:
            bot = MarkovBot(settings, servers)
            async with running_bot(fake, bot), aiohttp.ClientSession() as http:
                for stem, command, options, presses in SCREENS:
                    if stem == "show_work":
                        options = {**options, **SHOW_WORK}
                    rec = await fake.invoke(
                        world.guild_id, world.channel_id, world.user_id, command, options
                    )
                    await rec.wait_message(timeout=60)
                    for custom_id in presses:
                        assert rec.original_message_id is not None
                        click = await fake.click(rec.original_message_id, custom_id, world.user_id)
                        await click.wait_message(timeout=30)
                    assert rec.original_message_id is not None
                    message = fake.message(rec.original_message_id)
                    images = {}
                    for attachment in message.get("attachments", []):
                        async with http.get(attachment["url"]) as response:
                            data = await response.read()
                        images[attachment["filename"]] = "data:image/png;base64," + (
                            base64.b64encode(data).decode()
                        )
                    typed = " ".join(f"{k}: {v}" for k, v in options.items())
                    screens.append(
                        {
                            "name": stem,
                            "command": f"/{command} {typed}",
                            "user": "alice",
                            "message": message,
                            "images": images,
                        }
                    )
    return screens


# ------------------------------------------------------------------- the look-alike

ANSI = {"30": "#4f545c", "31": "#dc322f", "32": "#859900", "33": "#b58900", "34": "#268bd2"}


def ansi_html(code: str) -> str:
    """A Discord ``ansi`` block: colour escapes become spans, everything else is text."""
    out, open_span = [], False
    for part in re.split(r"(\x1b\[[\d;]*m)", code):
        m = re.fullmatch(r"\x1b\[([\d;]*)m", part)
        if not m:
            out.append(html.escape(part))
            continue
        if open_span:
            out.append("</span>")
            open_span = False
        colour = next((ANSI[c] for c in m.group(1).split(";") if c in ANSI), None)
        if colour:
            out.append(f'<span style="color:{colour}">')
            open_span = True
    return "".join(out) + ("</span>" if open_span else "")


def inline_html(text: str) -> str:
    """Discord's inline markdown as the bot uses it: **bold**, `code`, \\ escapes,
    mentions of channels, -# subtext lines and line breaks."""
    escapes: list[str] = []

    def keep(m: re.Match[str]) -> str:
        escapes.append(html.escape(m.group(1)))
        return f"\x00{len(escapes) - 1}\x00"

    text = re.sub(r"\\([^\w\s])", keep, text)
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"(?m)^-# (.*)$", r'<span class="sub">\1</span>', text)
    text = text.replace("\n", "<br>")
    return re.sub(r"\x00(\d+)\x00", lambda m: escapes[int(m.group(1))], text)


def markdown_html(text: str) -> str:
    """Code fences (plain and ``ansi``) as blocks, the rest through :func:`inline_html`."""
    out = []
    for i, part in enumerate(re.split(r"```", text)):
        if i % 2 == 0:
            out.append(inline_html(part.strip("\n") if i else part.rstrip("\n")))
            continue
        lang, _, body = part.partition("\n")
        body = body.rstrip("\n")
        code = ansi_html(body) if lang == "ansi" else html.escape(body)
        out.append(f"<pre>{code}</pre>")
    return "".join(out)


def embed_html(embed: dict[str, Any], images: dict[str, str]) -> str:
    colour = f"#{int(embed.get('color', 0x1E1F22)):06x}"
    parts = []
    if "title" in embed:
        parts.append(f'<div class="title">{inline_html(embed["title"])}</div>')
    if "description" in embed:
        parts.append(f'<div class="desc">{markdown_html(embed["description"])}</div>')
    fields = []
    for field in embed.get("fields", []):
        inline = " inline" if field.get("inline") else ""
        fields.append(
            f'<div class="field{inline}"><div class="fname">{inline_html(field["name"])}</div>'
            f'<div class="fvalue">{markdown_html(field["value"])}</div></div>'
        )
    if fields:
        parts.append(f'<div class="fields">{"".join(fields)}</div>')
    url = (embed.get("image") or {}).get("url", "")
    if url.startswith("attachment://") and url.removeprefix("attachment://") in images:
        parts.append(f'<img class="image" src="{images[url.removeprefix("attachment://")]}">')
    if "footer" in embed:
        parts.append(f'<div class="footer">{html.escape(embed["footer"]["text"])}</div>')
    return f'<div class="embed" style="border-left-color:{colour}">{"".join(parts)}</div>'


STYLES = {1: "primary", 2: "secondary", 3: "success", 4: "danger", 5: "secondary"}


def components_html(rows: list[dict[str, Any]]) -> str:
    out = []
    for row in rows:
        buttons = "".join(
            f'<span class="button {STYLES.get(c.get("style", 2), "secondary")}'
            f'{" disabled" if c.get("disabled") else ""}">{html.escape(c.get("label", ""))}</span>'
            for c in row.get("components", [])
            if c.get("type") == 2
        )
        out.append(f'<div class="row">{buttons}</div>')
    return "".join(out)


CSS = """
body { margin: 0; background: #313338; color: #dbdee1; font: 16px/1.375 "DejaVu Sans", sans-serif; }
.msg { padding: 8px 16px 16px 72px; position: relative; }
.reply { color: #949ba4; font-size: 14px; margin: 0 0 4px -16px; display: flex; gap: 6px;
  align-items: center; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
.reply .mini { width: 16px; height: 16px; border-radius: 50%; background: #f0b232; flex: none; }
.reply b { color: #dbdee1; font-weight: 600; }
.reply .cmd { color: #00a8fc; }
.avatar { position: absolute; left: 16px; top: 34px; width: 40px; height: 40px;
  border-radius: 50%; background: #5865f2; color: white; font-weight: bold;
  display: flex; align-items: center; justify-content: center; }
.name { color: #f2f3f5; font-weight: 600; }
.tag { background: #5865f2; color: white; font-size: 10px; font-weight: 600;
  border-radius: 3px; padding: 1px 4px; margin-left: 4px; vertical-align: 2px; }
.time { color: #949ba4; font-size: 12px; margin-left: 6px; }
.content { margin: 2px 0 4px; }
.embed { background: #2b2d31; border-left: 4px solid; border-radius: 4px; max-width: 520px;
  padding: 8px 16px 16px 12px; margin-top: 4px; box-sizing: border-box; }
.title { color: #f2f3f5; font-weight: 600; margin-top: 8px; }
.desc, .fvalue { font-size: 14px; margin-top: 8px; }
.fields { display: flex; flex-wrap: wrap; gap: 0 8px; }
.field { flex: 1 1 100%; margin-top: 8px; min-width: 0; }
.field.inline { flex: 1 1 150px; }
.fname { font-size: 14px; font-weight: 600; color: #f2f3f5; }
.fvalue { margin-top: 2px; }
pre { background: #1e1f22; border: 1px solid #1e1f22; border-radius: 4px; padding: 7px;
  margin: 6px 0 0; font: 13.6px/1.3 "DejaVu Sans Mono", monospace; white-space: pre-wrap;
  overflow-wrap: anywhere; }
code { background: #1e1f22; border-radius: 3px; padding: 0 3px;
  font: 85% "DejaVu Sans Mono", monospace; }
.sub { color: #949ba4; font-size: 12px; }
.image { display: block; max-width: 100%; border-radius: 4px; margin-top: 16px; }
.footer { color: #dbdee1; font-size: 12px; margin-top: 8px; }
.row { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 8px; }
.button { border-radius: 3px; padding: 2px 16px; min-height: 32px; box-sizing: border-box;
  display: inline-flex; align-items: center; font-size: 14px; font-weight: 500; color: white; }
.primary { background: #5865f2; } .secondary { background: #4e5058; }
.success { background: #248046; } .danger { background: #da373c; }
.disabled { opacity: .5; }
@media (max-width: 500px) { .msg { padding: 8px 8px 16px 52px; } .avatar { left: 6px; }
  .reply { margin-left: -8px; } .embed { padding: 6px 8px 12px 8px; }
  pre { font-size: 11.5px; padding: 5px; } }
"""


def page(screen: dict[str, Any]) -> str:
    m = screen["message"]
    author = m.get("author", {})
    name = html.escape(author.get("global_name") or author.get("username", "bot"))
    text = m.get("content") or ""
    content = f'<div class="content">{markdown_html(text)}</div>' if text else ""
    embeds = "".join(embed_html(e, screen["images"]) for e in m.get("embeds", []))
    return f"""<!doctype html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width"><style>{CSS}</style></head><body>
<div class="msg">
  <div class="reply"><span class="mini"></span><b>{html.escape(screen["user"])}</b> used
    <span class="cmd">{html.escape(screen["command"])}</span></div>
  <div class="avatar">{name[:1].upper()}</div>
  <div><span class="name">{name}</span><span class="tag">APP</span>
    <span class="time">Today at 09:41</span></div>
  {content}{embeds}{components_html(m.get("components", []))}
</div></body></html>"""


def crop(path: Path) -> None:
    """Trim the empty chat background below (and beside) the message."""
    image = Image.open(path).convert("RGB")
    box = ImageChops.difference(image, Image.new("RGB", image.size, BACKGROUND)).getbbox()
    if box is not None:
        pad = 16 * (image.width // 1000 + 1)
        image.crop((0, 0, image.width, min(image.height, box[3] + pad))).save(path, optimize=True)


def shoot(browser: str, html_path: Path, out: Path, width: int, scale: int, profile: Path) -> None:
    subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--force-device-scale-factor={scale}",
            f"--window-size={width},3200",
            f"--screenshot={out}",
            html_path.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    crop(out)


def main() -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("needs Debian's chromium: apt-get install -y chromium")
    IMAGES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        screens = asyncio.run(record(work))
        kept = [{k: v for k, v in s.items() if k != "images"} for s in screens]
        (IMAGES / "screens.json").write_text(
            json.dumps(kept, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        for screen in screens:
            html_path = work / f"{screen['name']}.html"
            html_path.write_text(page(screen), encoding="utf-8")
            for label, (width, scale) in WIDTHS.items():
                out = IMAGES / f"screen_{screen['name']}_{label}.png"
                shoot(browser, html_path, out, width, scale, work / "profile")
                sys.stdout.write(f"wrote {out.relative_to(ROOT)}\n")


if __name__ == "__main__":
    main()
