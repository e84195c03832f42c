# bash completion for batman, batman-parallel, batman-isolated, batman-multi and taskmaster.
# Projects and run-ids come from $BATMAN_HOME and profile names from the profile search path,
# through `batman __complete`; program and instance names for `batman ctl` from the running
# supervisor (`batman ctl status --json`).

_batman_commands="parallel isolated multi ps logs stop clean doctor profiles supervise ctl batch dashboard help version"
_batman_tiers="auto namespaces firejail systemd env"
_batman_signals="TERM INT QUIT HUP KILL USR1 USR2 ALRM CONT STOP TSTP WINCH PIPE"
_batman_policies="always never unexpected"
_batman_ctl_commands="status start stop restart reload quit tail pid help version"
_batman_job_options="--isolation --profile --net --no-net --memory --cpus --pids --timeout --restart
  --exitcodes --startretries --starttime --stopsignal --stoptime --env --cwd --worktree --keep-worktree
  -t --tty -d --detach --keep-tmp --monitor --no-monitor -q --quiet -h --help -V --version"
# Options that take a value (the next word is not a positional argument).
_batman_valued="--isolation --profile --memory --cpus --pids --timeout --restart --exitcodes --startretries
  --starttime --stopsignal --stoptime --env --cwd --project -p --format -n --lines --signal --grace
  --older-than --pidfile --socket --config -j --max-concurrency --rate-limit --retries --halt --report
  --junit --joblog --output --tail --rpc-socket --executor --partition --account --qos --slurm-opt
  --slurm-array-size --port --bind"

# The batman executable next to the one being completed (so a source install's is asked).
_batman_exe() {
  local self=${COMP_WORDS[0]}
  if [[ $self == */* && -x ${self%/*}/batman ]]; then
    printf '%s\n' "${self%/*}/batman"
  else
    printf '%s\n' batman
  fi
}

_batman_words() {  # _batman_words projects | runs PROJECT | profiles
  "$(_batman_exe)" __complete "$@" 2>/dev/null
}

# Program and instance names of the running supervisor (ctl's --config/--socket are kept).
_batman_ctl_names() {
  local -a target=()
  local i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      --config | --socket) target+=("${COMP_WORDS[i]}" "${COMP_WORDS[i + 1]}") ;;
    esac
  done
  "$(_batman_exe)" ctl "${target[@]}" status --json 2>/dev/null |
    grep -oE '"(name|program)": *"[^"]*"' | sed -E 's/.*"([^"]*)"$/\1/' | sort -u
}

_batman_reply() {  # _batman_reply WORDS...: COMPREPLY from the words matching $cur
  local IFS=$'\n'
  COMPREPLY=($(compgen -W "$*" -- "$cur"))
}

_batman_files() {  # _batman_files [-d | 'EXT...']: directories, and files
  local IFS=$'\n' ext
  if [[ ${1:-} == -d ]]; then
    COMPREPLY=($(compgen -d -- "$cur"))
  elif [[ -z ${1:-} ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
  else
    COMPREPLY=($(compgen -d -S / -- "$cur"))
    for ext in ${1// /$'\n'}; do COMPREPLY+=($(compgen -f -X "!*.$ext" -- "$cur")); done
  fi
  compopt -o filenames 2>/dev/null
}

# The value of option $prev, when it takes one; returns 1 when $prev takes none.
_batman_option_value() {
  case $prev in
    --isolation) _batman_reply $_batman_tiers ;;
    --profile) _batman_reply $(_batman_words profiles); [[ $cur == */* || $cur == *.y* ]] && _batman_files 'yaml yml' ;;
    --restart) _batman_reply $_batman_policies ;;
    --stopsignal | --signal) _batman_reply $_batman_signals ;;
    -p | --project) _batman_reply $(_batman_words projects) ;;
    --format) [[ ${COMP_WORDS[1]} == supervise || ${COMP_WORDS[0]##*/} == taskmaster ]] && _batman_reply auto yaml supervisord || _batman_reply table json ;;
    --executor) _batman_reply local slurm ;;
    --rpc-socket) _batman_files ;;
    --partition | --account | --qos | --slurm-opt | --slurm-array-size | --port | --bind) COMPREPLY=() ;;
    --output) _batman_reply grouped prefixed none ;;
    --halt) _batman_reply never soon,fail=1 now,fail=1 soon,success=1 now,success=1 now,done=1 ;;
    --cwd) _batman_files -d ;;
    --config) _batman_files 'yaml yml' ;;
    --socket | --pidfile | --report | --junit | --joblog) _batman_files ;;
    --memory | --cpus | --pids | --timeout | --exitcodes | --startretries | --starttime | --stoptime | \
      --env | -n | --lines | --grace | --older-than | -j | --max-concurrency | --rate-limit | --retries | --tail)
      COMPREPLY=() ;;  # a number, size or duration: nothing to offer
    *) return 1 ;;
  esac
  return 0
}

# Positional words of the command line from word START on, before the current one.
_batman_positionals() {
  local start=$1 i word
  positionals=()
  for ((i = start; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    if [[ $word == -* ]]; then
      [[ $word != *=* && " ${_batman_valued//$'\n'/ } " == *" $word "* ]] && ((i++))
      continue
    fi
    positionals+=("$word")
  done
}

# batman-parallel / -isolated / -multi (or batman parallel...): LEAD is how many positional
# words come before COMMAND (PROJECT or ID: 1; isolated: 0); START is the first word after
# the command's name.
_batman_job() {
  local lead=$1 start=$2 i word n=0
  for ((i = start; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    if [[ $word == -- ]]; then
      ((n > lead - 1)) || n=$lead
      break
    fi
    if [[ $word == -* ]]; then
      [[ $word != *=* && " ${_batman_valued//$'\n'/ } " == *" $word "* ]] && ((i++))
      continue
    fi
    ((n++))
    if ((n > lead)); then  # COMMAND has begun: its own words from here on
      if declare -F _command_offset >/dev/null; then
        _command_offset "$i"
      else
        COMPREPLY=($(compgen -f -- "$cur"))
      fi
      return
    fi
  done
  _batman_option_value && return
  if [[ $cur == -* ]]; then
    _batman_reply $_batman_job_options $( ((lead == 0)) && echo --project)
  elif ((n < lead)); then
    _batman_reply $(_batman_words projects)
  else
    COMPREPLY=($(compgen -c -- "$cur"))
  fi
}

_batman() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  local self=${COMP_WORDS[0]##*/} command start=2
  local -a positionals
  COMPREPLY=()
  case $self in
    batman-parallel) _batman_job 1 1; return ;;
    batman-multi) _batman_job 1 1; return ;;
    batman-isolated) _batman_job 0 1; return ;;
    taskmaster) command=supervise start=1 ;;
    *)
      if ((COMP_CWORD == 1)); then
        _batman_reply $_batman_commands -h --help -V --version
        return
      fi
      command=${COMP_WORDS[1]}
      ;;
  esac
  case $command in
    parallel | multi) _batman_job 1 2; return ;;
    isolated) _batman_job 0 2; return ;;
  esac
  _batman_option_value && return
  _batman_positionals "$start"
  local np=${#positionals[@]}
  case $command in
    ps)
      [[ $cur == -* ]] && _batman_reply -a --all -p --project --format --json -w --wide -q --quiet -h --help ;;
    logs)
      if [[ $cur == -* ]]; then _batman_reply -f --follow -n --lines -h --help
      elif ((np == 0)); then _batman_reply $(_batman_words projects)
      elif ((np == 1)); then _batman_reply $(_batman_words runs "${positionals[0]}")
      fi ;;
    stop)
      if [[ $cur == -* ]]; then _batman_reply --all --signal --grace -h --help
      elif ((np == 0)); then _batman_reply $(_batman_words projects)
      elif ((np == 1)); then _batman_reply $(_batman_words runs "${positionals[0]}")
      fi ;;
    clean)
      if [[ $cur == -* ]]; then _batman_reply --older-than -n --dry-run --all --json -h --help
      elif ((np == 0)); then _batman_reply $(_batman_words projects)
      fi ;;
    doctor) _batman_reply --json -h --help ;;
    dashboard) _batman_reply --port --bind --token --open -d --detach --url --stop -h --help -V --version ;;
    profiles)
      if [[ $cur == -* ]]; then _batman_reply --json -h --help
      elif ((np == 0)); then _batman_reply list show
      elif ((np == 1)) && [[ ${positionals[0]} == show ]]; then
        _batman_reply $(_batman_words profiles)
        [[ $cur == */* || $cur == *.y* ]] && _batman_files 'yaml yml'
      fi ;;
    supervise)
      if [[ $cur == -* ]]; then _batman_reply -d --daemon --pidfile --format --rpc-socket -h --help -V --version
      elif ((np == 0)); then _batman_files 'yaml yml'
      fi ;;
    ctl)
      if ((np == 0)); then
        if [[ $cur == -* ]]; then _batman_reply --socket --config -h --help -V --version
        else _batman_reply $_batman_ctl_commands
        fi
      else
        case ${positionals[0]} in
          status) [[ $cur == -* ]] && _batman_reply --json || _batman_reply $(_batman_ctl_names) ;;
          start | stop | restart | pid) _batman_reply all $(_batman_ctl_names) ;;
          tail)
            if ((np == 1)); then _batman_reply $(_batman_ctl_names)
            else _batman_reply -f stdout stderr
            fi ;;
        esac
      fi ;;
    batch)
      if [[ $cur == -* ]]; then
        _batman_reply -j --max-concurrency --rate-limit --timeout --retries --halt --report --junit --joblog \
          --isolation --profile --output --tail --resume --resume-failed --no-deps --executor --partition \
          --account --qos --slurm-opt --slurm-array-size -q --quiet -h --help
      elif ((np == 0)); then _batman_files 'yaml yml'; [[ -z $cur ]] && COMPREPLY+=(-)
      elif [[ -f ${positionals[0]} ]]; then  # TASK names: the keys under tasks:
        _batman_reply $(sed -nE '/^tasks:/,/^[^ #]/ s/^  ([A-Za-z0-9][A-Za-z0-9._-]*):.*/\1/p' "${positionals[0]}")
      fi ;;
    help) ((np == 0)) && _batman_reply $_batman_commands ;;
  esac
}

complete -F _batman batman batman-parallel batman-isolated batman-multi taskmaster
