/**
 * @file Tree-sitter grammar for Symbiont's `.sym`/`.symbi` language.
 * @license Apache-2.0
 *
 * The language is defined by the hand-written parser in `syntax/src/grammar.rs` and described in
 * `docs/dsl-reference.md`; this grammar accepts the same files. Node names follow the syntax
 * tree's node kinds in snake_case (`policy_body`, `name_ref`, `bin_expr`, …) so that one name
 * means one thing across the toolchain. Where the hand-written parser looks at line breaks or
 * several tokens ahead, this grammar is more permissive (it never needs to reject a file: the
 * server reports syntax errors) and lets tree-sitter's GLR parser try both readings; the comments
 * at each `conflicts` entry say which.
 */

/* eslint-disable no-undef */

const PREC = {
  lambda: -1,
  assign: 1,
  or: 3,
  and: 5,
  not: 7,
  compare: 9,
  add: 11,
  mul: 13,
  prefix: 15,
  postfix: 17,
  named_arg: 20,
};

// The words a dotted quantity may end with (`90.days`): the lexer's list.
const DOTTED_UNITS = [
  'milliseconds', 'millisecond', 'seconds', 'second', 'minutes', 'minute', 'hours', 'hour',
  'days', 'day', 'weeks', 'week', 'months', 'month', 'years', 'year',
];

// The words that are keywords somewhere. A qualifier word of a rule phrase may be any word but
// `if` (and, after an allow or deny body, `in`), keywords included: `audit: x with y`.
const QUALIFIER_KEYWORDS = [
  'metadata', 'agent', 'policy', 'type', 'function', 'schedule', 'channel', 'memory', 'webhook',
  'with', 'extends', 'allow', 'deny', 'require', 'audit', 'conditions', 'capabilities', 'let',
  'else', 'for', 'while', 'match', 'try', 'catch', 'return', 'break', 'continue', 'true', 'false',
  'null', 'not', '_',
];

/** A name being defined. */
function name($) {
  return alias($.identifier, $.name);
}

/** A name being referred to. */
function nameRef($) {
  return alias($.identifier, $.name_ref);
}

/** `operand.name` or `operand.0`. */
function postfixField($, operand) {
  return prec(PREC.postfix, seq(
    field('value', operand),
    '.',
    field('field', choice(nameRef($), alias($.int, $.name_ref))),
  ));
}

/** `operand(arguments)`. */
function postfixCall($, operand) {
  return prec(PREC.postfix, seq(field('function', operand), field('arguments', $.arg_list)));
}

/** `operand[index]`. */
function postfixIndex($, operand) {
  return prec(PREC.postfix, seq(field('value', operand), '[', field('index', $._expression), ']'));
}

/** `rule (',' rule)* ','?`, possibly empty. */
function commaSep(rule) {
  return optional(commaSep1(rule));
}

/** `rule (',' rule)* ','?`. */
function commaSep1(rule) {
  return seq(rule, repeat(seq(',', rule)), optional(','));
}

/**
 * A block comment whose nested comments go `depth` levels deep. Tree-sitter tokens are regular,
 * so nesting is unrolled to a fixed depth (files nest one or two levels, if at all); deeper
 * openers count as text.
 */
function blockComment(depth) {
  if (depth === 0) {
    return seq('/*', /[^*]*\*+([^/*][^*]*\*+)*/, '/');
  }
  return seq(
    '/*',
    repeat(choice(
      /[^*/]/, // any character but the two that may open or close
      /\*+[^*/]/, // stars not followed by `/`
      /\/+[^*/]/, // slashes not followed by `*`
      seq(/\/*/, blockComment(depth - 1)), // a nested comment, maybe after slashes
    )),
    /\**\*\//, // the closing `*/`, maybe after more stars
  );
}

module.exports = grammar({
  name: 'symbiont',

  word: $ => $.identifier,

  extras: $ => [/\s/, $.line_comment, $.block_comment],

  supertypes: $ => [$._item, $._expression, $._type, $._pattern],

  conflicts: $ => [
    // `if x {`: `x {` may open a struct literal or the block (the struct reading dies at the
    // first statement that is not a record field; `struct_expr` has a lower dynamic precedence).
    [$.struct_expr, $._primary],
    // `key { … }` opens a nested entry block, not a record value (the Rust parser decides by
    // the token; here the entry block has the higher dynamic precedence).
    [$.record_field, $.entry],
    [$.entry_block, $._record_body],
    // `=> { x }` in a match arm is a block, not the record `{ x }` (the block has the higher
    // dynamic precedence).
    [$.record_field, $.path_expr],
    [$.block, $._record_body],
    [$._literal, $.record_field],
    // `(a) => …` is a lambda, `(a)` a parenthesised expression: decided at `=>`.
    [$.path_expr, $.lambda_params],
    // After a rule's body, a word such as `deny` is a qualifier, or the next rule when `:`
    // follows it.
    [$.phrase],
    [$._op_phrase],
    [$.rule, $.phrase],
    [$._op_rule_body, $._op_phrase],
    // `match(x)` and `try(x)` call functions of those names; `match x {` and `try {` are
    // expressions (decided by what follows).
    [$.path_expr, $.match_expr],
    [$.path_expr, $.try_expr],
  ],

  rules: {
    source_file: $ => repeat($._item),

    _item: $ => choice(
      $.metadata,
      $.agent,
      $.policy,
      $.type_def,
      $.function,
      $.schedule,
      $.channel,
      $.memory,
      $.webhook,
    ),

    // ---------------------------------------------------------------------------------------
    // Entry items

    metadata: $ => seq('metadata', field('body', $.entry_block)),
    schedule: $ => seq('schedule', field('name', name($)), field('body', $.entry_block)),
    channel: $ => seq('channel', field('name', name($)), field('body', $.entry_block)),
    memory: $ => seq('memory', field('name', name($)), field('body', $.entry_block)),
    webhook: $ => seq('webhook', field('name', name($)), field('body', $.entry_block)),

    entry_block: $ => seq(
      '{',
      repeat(choice($.entry, seq($.policy, optional(',')))),
      '}',
    ),

    // `key = value`, `key: value`, `key { entries }` or `key value`. In an entry block `policy`
    // followed by a word opens an inline policy, so `policy` is a key only before `=`, `:` or `{`.
    entry: $ => {
      const assigned = seq(choice('=', ':'), field('value', $._expression));
      const nested = prec.dynamic(1, field('body', $.entry_block));
      // `key value`: the value starts on the key's line (not checked here).
      const inline = field('value', $._expression);
      const separator = optional(choice(',', ';'));
      return choice(
        seq(field('key', choice(name($), $.string)), choice(assigned, nested, inline), separator),
        seq(field('key', alias('policy', $.name)), choice(assigned, nested), separator),
      );
    },

    // ---------------------------------------------------------------------------------------
    // Agents

    agent: $ => seq(
      'agent',
      field('name', name($)),
      optional(field('parameters', $.param_list)),
      optional(field('return_type', $.ret_type)),
      field('body', $.agent_body),
    ),

    param_list: $ => seq('(', commaSep($.param), ')'),
    param: $ => seq(field('name', name($)), optional(seq(':', field('type', $._type)))),
    ret_type: $ => seq('->', $._type),

    agent_body: $ => seq(
      '{',
      repeat(choice($.agent_field, $.policy, $.function, $.with_block)),
      '}',
    ),

    // `capabilities` stays a keyword token (not a `name`) so that queries can single out the
    // operations it lists with one capture.
    agent_field: $ => seq(
      field('name', choice(
        name($),
        alias(choice('policy', 'function', 'with'), $.name),
        'capabilities',
      )),
      choice('=', ':'),
      field('value', $._expression),
      optional(choice(',', ';')),
    ),

    with_block: $ => seq('with', optional($.with_attr_list), field('body', $.block)),
    with_attr_list: $ => commaSep1($.with_attr),
    with_attr: $ => seq(field('name', name($)), '=', field('value', $._expression)),

    // ---------------------------------------------------------------------------------------
    // Policies

    policy: $ => seq(
      'policy',
      field('name', name($)),
      optional($.extends_clause),
      field('body', $.policy_body),
    ),

    extends_clause: $ => seq('extends', nameRef($), repeat(seq(',', nameRef($)))),

    policy_body: $ => seq('{', repeat(choice($.rule, ',', ';')), '}'),

    rule: $ => choice(
      seq(
        field('kind', choice('allow', 'deny')),
        ':',
        field('body', $._op_rule_body),
        optional(field('guard', $.guard)),
      ),
      seq(
        field('kind', choice('require', 'audit', 'conditions')),
        ':',
        field('body', choice($._expression, $.phrase)),
        optional(field('guard', $.guard)),
      ),
    ),

    // An allow or deny body names operations, so there `in` is a qualifier word, not membership.
    _op_rule_body: $ => choice(
      $._expression,
      alias($._op_phrase, $.phrase),
    ),
    _op_phrase: $ => seq($._expression, repeat1(alias($._op_qualifier, $.qualifier))),
    _op_qualifier: $ => prec.right(1, seq(
      field('word', alias(choice($.identifier, 'in', ...QUALIFIER_KEYWORDS), $.name)),
      optional(field('value', $._unary_expression)),
    )),

    // `legal_authorization for active_reconnaissance`: the body, then qualifier words, each with
    // an optional value.
    phrase: $ => seq($._expression, repeat1($.qualifier)),
    qualifier: $ => prec.right(seq(
      field('word', alias(choice($.identifier, ...QUALIFIER_KEYWORDS), $.name)),
      optional(field('value', $._unary_expression)),
    )),

    guard: $ => seq('if', field('condition', $._expression)),

    // ---------------------------------------------------------------------------------------
    // Types, functions

    type_def: $ => seq('type', field('name', name($)), '=', field('type', $._type), optional(';')),

    function: $ => seq(
      'function',
      field('name', name($)),
      field('parameters', $.param_list),
      optional(field('return_type', $.ret_type)),
      field('body', $.block),
    ),

    _type: $ => choice($.optional_type, $.path_type, $.record_type, $.array_type),
    optional_type: $ => seq(choice($.path_type, $.record_type, $.array_type), '?'),
    path_type: $ => prec.right(seq(
      nameRef($),
      repeat(seq('::', nameRef($))),
      optional($.generic_args),
    )),
    generic_args: $ => seq('<', commaSep($._type), '>'),
    record_type: $ => seq(
      '{',
      optional(seq(
        $.field_def,
        repeat(seq(optional(choice(',', ';')), $.field_def)),
        optional(choice(',', ';')),
      )),
      '}',
    ),
    field_def: $ => seq(field('name', choice(name($), $.string)), ':', field('type', $._type)),
    array_type: $ => seq('[', $._type, ']'),

    // ---------------------------------------------------------------------------------------
    // Statements

    block: $ => seq('{', repeat(choice(';', $.let_stmt, $.expr_stmt)), '}'),

    let_stmt: $ => seq(
      'let',
      field('pattern', $._pattern),
      optional(seq(':', field('type', $._type))),
      '=',
      field('value', $._expression),
      ';',
    ),

    // The `;` is needed only between statements that are not block-like; not checked here.
    expr_stmt: $ => prec.right(seq($._expression, optional(';'))),

    // ---------------------------------------------------------------------------------------
    // Expressions

    _expression: $ => choice(
      $._unary_expression,
      $.bin_expr,
      $.lambda_expr,
      $._keyword_expression,
      $._keyword_postfix,
    ),

    // Expressions led by a keyword. Like any operand they may take postfix operators
    // (`match x { … }.len()`, built by `_keyword_postfix`) and `!`/`-`, but they are kept out of
    // `_unary_expression`, a qualifier's value, which cannot start with `if`.
    _keyword_expression: $ => choice(
      $.if_expr,
      $.match_expr,
      $.for_expr,
      $.while_expr,
      $.try_expr,
      $.return_expr,
      $.break_expr,
      $.continue_expr,
    ),
    _keyword_postfix: $ => choice(
      alias($._keyword_field_expr, $.field_expr),
      alias($._keyword_call_expr, $.call_expr),
      alias($._keyword_index_expr, $.index_expr),
    ),
    _keyword_postfix_operand: $ => prec(PREC.postfix, choice(
      $.if_expr,
      $.match_expr,
      $.for_expr,
      $.while_expr,
      $.try_expr,
      $._keyword_postfix,
    )),
    _keyword_field_expr: $ => postfixField($, $._keyword_postfix_operand),
    _keyword_call_expr: $ => postfixCall($, $._keyword_postfix_operand),
    _keyword_index_expr: $ => postfixIndex($, $._keyword_postfix_operand),

    // What a rule qualifier's value may be: no binary operation, no keyword-led expression.
    _unary_expression: $ => choice($._primary, $.prefix_expr),

    _primary: $ => choice(
      $._literal,
      $.path_expr,
      $.struct_expr,
      $.paren_expr,
      $.array_expr,
      $.record_expr,
      $.field_expr,
      $.call_expr,
      $.index_expr,
      alias($._unit_word_field, $.field_expr),
    ),

    _literal: $ => choice(
      $.int,
      $.float,
      $.quantity,
      $.string,
      $.secret_ref,
      $.boolean,
      $.null,
    ),

    boolean: _ => choice('true', 'false'),
    null: _ => 'null',

    // `match(x)` and `try(x)` are calls of functions with those names, and `not = 1` assigns to
    // a variable named `not`.
    path_expr: $ => seq(
      choice(nameRef($), alias(choice('match', 'try', 'not'), $.name_ref)),
      repeat(seq('::', nameRef($))),
    ),

    struct_expr: $ => prec.dynamic(-1, seq(field('name', $.path_expr), $._record_body)),
    record_expr: $ => $._record_body,
    _record_body: $ => seq('{', commaSep($.record_field), '}'),
    record_field: $ => seq(
      field('key', choice(name($), $.string)),
      optional(seq(':', field('value', $._expression))),
    ),

    paren_expr: $ => seq('(', $._expression, ')'),
    array_expr: $ => seq('[', commaSep($._expression), ']'),

    lambda_expr: $ => prec.right(PREC.lambda, seq(
      field('parameters', $.lambda_params),
      '=>',
      field('body', $._expression),
    )),
    lambda_params: $ => choice(name($), seq('(', commaSep(name($)), ')')),

    field_expr: $ => postfixField($, $._primary),
    call_expr: $ => postfixCall($, $._primary),
    arg_list: $ => seq('(', commaSep(choice($.named_arg, $._expression)), ')'),
    named_arg: $ => prec(PREC.named_arg, seq(
      field('name', choice(name($), alias('not', $.name))),
      choice('=', ':'),
      field('value', $._expression),
    )),
    index_expr: $ => postfixIndex($, $._primary),

    prefix_expr: $ => choice(
      prec(PREC.prefix, seq(
        field('operator', choice('!', '-')),
        field('operand', choice($._unary_expression, $._keyword_expression, $._keyword_postfix, $.lambda_expr)),
      )),
      prec(PREC.not, seq(field('operator', 'not'), field('operand', $._expression))),
    ),

    bin_expr: $ => {
      const left = [
        [PREC.or, '||'],
        [PREC.and, '&&'],
        [PREC.compare, choice('==', '!=', '<', '>', '<=', '>=', 'in')],
        [PREC.add, choice('+', '-')],
        [PREC.mul, choice('*', '/', '%')],
      ];
      return choice(
        ...left.map(([p, op]) => prec.left(p, seq(
          field('left', $._expression),
          field('operator', op),
          field('right', $._expression),
        ))),
        prec.right(PREC.assign, seq(
          field('left', $._expression),
          field('operator', choice('=', '+=', '-=', '*=', '/=', '%=')),
          field('right', $._expression),
        )),
      );
    },

    if_expr: $ => prec.right(seq(
      'if',
      field('condition', choice($.let_condition, $._expression)),
      field('consequence', $.block),
      optional(seq('else', field('alternative', choice($.if_expr, $.block)))),
    )),
    let_condition: $ => seq('let', field('pattern', $._pattern), '=', field('value', $._expression)),

    for_expr: $ => seq(
      'for',
      field('pattern', $._pattern),
      'in',
      field('iterable', $._expression),
      field('body', $.block),
    ),
    while_expr: $ => seq('while', field('condition', $._expression), field('body', $.block)),

    match_expr: $ => seq('match', field('value', $._expression), field('arms', $.match_arm_list)),
    // Arms are separated by `,` or by a line break (not checked here).
    match_arm_list: $ => seq(
      '{',
      optional(seq(
        $.match_arm,
        repeat(seq(optional(','), $.match_arm)),
        optional(','),
      )),
      '}',
    ),
    match_arm: $ => seq(
      field('pattern', $._pattern),
      optional(field('guard', alias($.match_guard, $.guard))),
      '=>',
      field('value', choice(prec.dynamic(1, $.block_expr), $._expression)),
    ),
    match_guard: $ => seq('if', field('condition', $._expression)),
    block_expr: $ => $.block,

    try_expr: $ => prec.right(seq('try', field('body', $.block), repeat($.catch_clause))),
    catch_clause: $ => seq(
      'catch',
      optional(seq(
        '(',
        optional(field('type', alias(nameRef($), $.path_type))),
        field('name', name($)),
        ')',
      )),
      field('body', $.block),
    ),

    return_expr: $ => prec.right(seq('return', optional(field('value', $._expression)))),
    break_expr: _ => 'break',
    continue_expr: _ => 'continue',

    // ---------------------------------------------------------------------------------------
    // Patterns

    _pattern: $ => choice($.wildcard_pat, $.literal_pat, $.tuple_struct_pat, $.ident_pat),
    wildcard_pat: _ => '_',
    literal_pat: $ => choice(
      $.boolean,
      $.null,
      $.int,
      $.float,
      $.string,
      $.quantity,
      seq('-', choice($.int, $.float)),
    ),
    tuple_struct_pat: $ => choice(
      seq(field('path', alias($._pattern_path, $.path_expr)), '(', commaSep($._pattern), ')'),
      field('path', alias($._qualified_path, $.path_expr)),
    ),
    _pattern_path: $ => seq(nameRef($), repeat(seq('::', nameRef($)))),
    _qualified_path: $ => seq(nameRef($), repeat1(seq('::', nameRef($)))),
    ident_pat: $ => name($),

    // ---------------------------------------------------------------------------------------
    // Names and tokens

    identifier: _ => /[A-Za-z_][A-Za-z0-9_]*/,

    int: _ => /[0-9][0-9_]*/,
    float: _ => /[0-9][0-9_]*\.[0-9][0-9_]*/,
    // A number with a unit (`30s`, `512MB`, `2GiB`), or the dotted form `90.days`.
    quantity: _ => token(choice(
      /[0-9][0-9_]*(\.[0-9][0-9_]*)?[A-Za-z_][A-Za-z0-9_]*/,
      seq(/[0-9][0-9_]*\./, choice(...DOTTED_UNITS)),
    )),
    // `90.days` is a quantity only when the unit is the whole word: `90.daysleft` is the field
    // `daysleft` of `90`. Tree-sitter's lexer takes the longest token, so this one, longer than
    // the quantity, keeps it from splitting the word (a leaf `field_expr`).
    _unit_word_field: _ => token(seq(/[0-9][0-9_]*\./, choice(...DOTTED_UNITS), /[A-Za-z0-9_]+/)),
    // One line; a backslash takes the next character with it.
    string: _ => /"([^"\\\n]|\\[^\n])*"/,
    secret_ref: _ => token(seq('vault://', /[A-Za-z0-9_.\/-]+/)),

    line_comment: _ => token(choice(seq('//', /[^\n]*/), seq('#', /[^\n]*/))),
    block_comment: _ => token(blockComment(3)),
  },
});
