"""What makes the page usable with a keyboard, a screen reader and eyes of every kind: the theme's colours (every
text at 4.5:1 or more against its background, WCAG AA, which Gradio's Soft theme misses on its explanations,
labels and primary buttons), a visible focus ring on every control (Gradio draws none on sliders, radios,
checkboxes or text boxes), and a "Skip to Step" link right after the prompt (without it Step was the 44th Tab
stop: each slider takes three).

layout.py places these; the colours that carry meaning (a token's probability) are views.py's. Checked in the
browser by tests/test_accessibility.py (axe-core, Tab stops, focus rings).
"""

from __future__ import annotations

import gradio as gr


def page_theme() -> gr.themes.Base:
    """Gradio's Soft theme in indigo and slate, its too-light colours a shade darker (ratios on white)."""
    return gr.themes.Soft(primary_hue="indigo", neutral_hue="slate").set(
        color_accent="*primary_600",  # the selected tab's name: indigo-500 on white 4.46:1 -> 6.3:1
        block_info_text_color="*neutral_600",  # the explanations under the controls: slate-400 2.6:1 -> 7.6:1
        body_text_color_subdued="*neutral_600",  # the footer, placeholders
        block_label_text_color="*primary_700",  # labels on indigo-100: indigo-500 3.6:1 -> 6.4:1
        block_title_text_color="*primary_700",
        button_primary_background_fill="*primary_600",  # white on indigo-500 4.5:1 -> indigo-600 6.3:1
        button_primary_background_fill_hover="*primary_700",  # was indigo-400, 3:1
        button_primary_background_fill_hover_dark="*primary_700",
        checkbox_label_background_fill_selected="*primary_600",  # the chosen strategy, white on indigo
        checkbox_label_background_fill_selected_dark="*primary_700",
    )


# The focus ring: indigo-700 (8:1 on white) outside the control, so it shows on a primary button too; lighter in
# dark mode. !important because Gradio sets `outline: none` on its inputs.
FOCUS_CSS = """
:root { --dp-focus-ring: #4338ca; }
.dark { --dp-focus-ring: #a5b4fc; }
.gradio-container :is(a, button, input, textarea, select, summary, [tabindex]):focus-visible,
#dp-popover :focus-visible {
  outline: 3px solid var(--dp-focus-ring) !important; outline-offset: 2px !important;
}
/* the skip link: out of sight until the keyboard reaches it, then a button-like pill over the examples */
#dp-skip { position: relative; height: 0; min-height: 0; margin-top: calc(-1 * var(--layout-gap, 16px));
           overflow: visible; z-index: 20; }
.dp-skip { position: absolute; left: 0; top: 4px; padding: 6px 14px; border-radius: 6px; background: #4338ca;
           color: #fff !important; font-weight: 600; text-decoration: none; clip-path: inset(50%);
           white-space: nowrap; }
.dp-skip:focus { clip-path: none; }
"""

SKIP_LINK_HTML = '<a class="dp-skip" href="#dp-step">Skip to Step</a>'

# The link's click (Enter): the Step tab is opened if another is, then the first Step control that is on (Step
# itself unless the run has ended) takes the focus. The address is left alone (it carries the permalink).
SKIP_JS = """
element.addEventListener('click', (e) => {
  if (!e.target.closest('a.dp-skip')) { return; }
  e.preventDefault();
  const tab = document.querySelector('#dp-views [role=tab]');
  if (tab && tab.getAttribute('aria-selected') !== 'true') { tab.click(); }
  let tries = 0;
  const land = () => {
    const target = [...document.querySelectorAll('#dp-step-bar button, #dp-step-bar input')]
      .find((b) => !b.disabled && b.offsetParent !== null);
    if (target) { target.focus(); target.scrollIntoView({block: 'nearest'}); }
    else if (tries++ < 30) { requestAnimationFrame(land); }
  };
  land();
});
"""
