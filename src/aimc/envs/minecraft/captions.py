"""Minecraft event -> instruction paraphrases: the caption catalogue for `aimc.envs.minecraft` events.

Kept apart from Crafter's catalogue (`aimc.embed.captions.CAPTIONS`, which the shipped agent was trained on) and
selected by world through `aimc.embed.captions.catalogue("minecraft")`. As there, the first paraphrase is the
canonical instruction; several follow MineDojo's task prompts ("obtain log") and STEVE-1's early-game prompts
("chop down the tree", "break leaves", "collect seeds"), so those wordings are in the training distribution.
`NOTHING` labels clips in which no event happens.
"""

from __future__ import annotations

NOTHING = "nothing"

CAPTIONS: dict[str, tuple[str, ...]] = {
    "obtain_log": ("obtain log", "chop down the tree", "gather wood", "get a log", "collect wood"),
    "obtain_planks": ("obtain planks", "craft wooden planks", "make planks", "turn logs into planks"),
    "obtain_stick": ("obtain sticks", "craft sticks", "make some sticks"),
    "obtain_crafting_table": ("obtain a crafting table", "get a crafting table", "make a workbench"),
    "obtain_wooden_pickaxe": ("obtain a wooden pickaxe", "get a wooden pickaxe", "make a wood pickaxe"),
    "obtain_cobblestone": ("obtain cobblestone", "collect cobblestone", "get some cobblestone", "gather stone"),
    "obtain_stone_pickaxe": ("obtain a stone pickaxe", "get a stone pickaxe", "make a stone pickaxe"),
    "obtain_furnace": ("obtain a furnace", "get a furnace", "make a furnace"),
    "obtain_coal": ("obtain coal", "collect coal", "get some coal"),
    "obtain_iron_ore": ("obtain iron ore", "collect iron ore", "get some iron ore"),
    "obtain_iron_ingot": ("obtain an iron ingot", "smelt iron", "make an iron ingot"),
    "obtain_iron_pickaxe": ("obtain an iron pickaxe", "get an iron pickaxe", "make an iron pickaxe"),
    "obtain_diamond": ("obtain a diamond", "collect a diamond", "find diamonds"),
    "obtain_dirt": ("obtain dirt", "collect dirt", "get dirt", "gather a ton of dirt"),
    "obtain_seeds": ("obtain seeds", "collect seeds", "get wheat seeds", "gather seeds"),
    "obtain_sapling": ("obtain a sapling", "collect a sapling", "pick up a sapling"),
    "mine_log": ("chop a tree", "break a log", "cut down the tree", "punch the tree", "chop it down"),
    "mine_leaves": ("break leaves", "break the leaves", "destroy leaves", "clear the leaves"),
    "mine_grass": ("break tall grass", "break grass", "cut the grass", "punch the grass"),
    "mine_flower": ("break a flower", "pick a flower", "pluck a flower"),
    "mine_dirt": ("dig dirt", "dig a hole", "dig into the ground", "break dirt"),
    "mine_stone": ("mine stone", "break stone", "dig through stone", "mine some rock"),
    "mine_coal_ore": ("mine coal ore", "break coal ore", "dig up coal"),
    "mine_iron_ore": ("mine iron ore", "break iron ore", "dig up iron"),
    "mine_diamond_ore": ("mine diamond ore", "break diamond ore", "dig up diamonds"),
    "craft_planks": ("craft planks", "craft wood planks", "make planks from a log"),
    "craft_stick": ("craft a stick", "craft sticks from planks", "make a stick"),
    "craft_crafting_table": ("craft a crafting table", "build a crafting table", "craft a workbench"),
    "craft_wooden_pickaxe": ("craft a wooden pickaxe", "build a wooden pickaxe", "craft a wood pickaxe"),
    "craft_stone_pickaxe": ("craft a stone pickaxe", "build a stone pickaxe", "craft a cobblestone pickaxe"),
    "craft_furnace": ("craft a furnace", "build a furnace", "make a furnace from cobblestone"),
    "craft_iron_pickaxe": ("craft an iron pickaxe", "build an iron pickaxe", "forge an iron pickaxe"),
    "place_crafting_table": ("place a crafting table", "put down a crafting table", "set up a workbench"),
    "place_furnace": ("place a furnace", "put down a furnace", "set up a furnace"),
    "kill_cow": ("kill a cow", "hunt a cow", "slay a cow"),
    "kill_pig": ("kill a pig", "hunt a pig", "slay a pig"),
    "kill_sheep": ("kill a sheep", "hunt a sheep", "slay a sheep"),
    "kill_chicken": ("kill a chicken", "hunt a chicken", "slay a chicken"),
    "kill_zombie": ("kill a zombie", "defeat a zombie", "fight a zombie"),
    "kill_skeleton": ("kill a skeleton", "defeat a skeleton", "fight a skeleton"),
    "kill_spider": ("kill a spider", "defeat a spider", "combat a spider"),
    "kill_creeper": ("kill a creeper", "defeat a creeper", "fight a creeper"),
    "open_inventory": ("open inventory", "open the inventory", "look in your inventory"),
    NOTHING: ("nothing happens", "wander around", "walk around", "do nothing in particular"),
}

# When one step fires several events, a clip is captioned by the most specific one: crafting, placing, killing and
# mining are what the player did; obtaining is its outcome (a crafted pickaxe is also obtained); the inventory
# screen opens along the way.
PRIORITY: tuple[str, ...] = (
    *(k for k in CAPTIONS if k.startswith(("craft_", "place_", "kill_"))),
    *(k for k in CAPTIONS if k.startswith("mine_")),
    *(k for k in CAPTIONS if k.startswith("obtain_")),
    "open_inventory",
)
