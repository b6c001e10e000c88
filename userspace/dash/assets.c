// SPDX-License-Identifier: MIT
/*
 * The dashboard's page, script and style, built into weftd from
 * userspace/dash/assets/ (no external assets, no CDN): each file is included
 * as is by the assembler and NUL-terminated.
 */
#define DASH_ASSET(sym, file)                                                                      \
	__asm__(".section .rodata\n"                                                               \
		".global " #sym "\n"                                                               \
		".type " #sym ", @object\n"                                                        \
		".balign 16\n" #sym ":\n"                                                          \
		".incbin \"userspace/dash/assets/" file "\"\n"                                     \
		".byte 0\n"                                                                        \
		".size " #sym ", . - " #sym "\n"                                                   \
		".previous\n")

DASH_ASSET(dash_index_html, "index.html");
DASH_ASSET(dash_app_js, "app.js");
DASH_ASSET(dash_app_css, "app.css");
