# fish completion for batman, batman-parallel, batman-isolated, batman-multi and taskmaster.
# Projects and run-ids come from $BATMAN_HOME and profile names from the profile search path
# (`batman __complete`); program and instance names for `batman ctl` from the running
# supervisor (`batman ctl status --json`).

function __batman_exe
    set -l self (commandline -opc)[1]
    if string match -q '*/*' -- $self; and test -x (dirname $self)/batman
        echo (dirname $self)/batman
    else
        echo batman
    end
end
function __batman_projects
    set -l exe (__batman_exe)
    $exe __complete projects 2>/dev/null
end
function __batman_profiles
    set -l exe (__batman_exe)
    $exe __complete profiles 2>/dev/null
end
function __batman_runs
    # the project: the first word after the subcommand that is not an option
    set -l words (commandline -opc)
    for w in $words[3..-1]
        string match -q -- '-*' $w; and continue
        set -l exe (__batman_exe)
        $exe __complete runs $w 2>/dev/null
        return
    end
end
function __batman_positionals  # how many non-option words follow the subcommand
    set -l words (commandline -opc)
    set -l n 0
    for w in $words[3..-1]
        string match -q -- '-*' $w; or set n (math $n + 1)
    end
    echo $n
end
function __batman_ctl_names
    set -l words (commandline -opc)
    set -l target
    for i in (seq 2 (count $words))
        if contains -- $words[$i] --config --socket
            set target $target $words[$i] $words[(math $i + 1)]
        end
    end
    set -l exe (__batman_exe)
    $exe ctl $target status --json 2>/dev/null | string match -ra '"(?:name|program)": *"[^"]*"' | string replace -r '.*"([^"]*)"$' '$1' | sort -u
end

set -l __batman_commands parallel isolated multi ps logs stop clean doctor profiles supervise ctl batch dashboard help version
set -l __batman_tiers auto namespaces firejail systemd env
set -l __batman_signals TERM INT QUIT HUP KILL USR1 USR2 ALRM CONT STOP TSTP WINCH PIPE

complete -c batman -f
complete -c batman -n "not __fish_seen_subcommand_from $__batman_commands" -a "$__batman_commands"
complete -c batman -n "not __fish_seen_subcommand_from $__batman_commands" -s V -l version -d 'print the version'
complete -c batman -s h -l help -d 'show the options'

# The job options: batman parallel|isolated|multi and batman-parallel|-isolated|-multi.
for cmd in batman-parallel batman-isolated batman-multi batman
    set -l cond
    if test $cmd = batman
        set cond -n '__fish_seen_subcommand_from parallel isolated multi'
    end
    complete -c $cmd $cond -l isolation -x -a "$__batman_tiers" -d 'isolation tier'
    complete -c $cmd $cond -l profile -r -a '(__batman_profiles)' -d 'isolation profile: NAME or FILE'
    complete -c $cmd $cond -l net -d 'use the host network'
    complete -c $cmd $cond -l no-net -d 'no network'
    complete -c $cmd $cond -l memory -x -d 'memory limit, e.g. 512M'
    complete -c $cmd $cond -l cpus -x -d 'CPU limit, e.g. 1.5'
    complete -c $cmd $cond -l pids -x -d 'process count limit'
    complete -c $cmd $cond -l timeout -x -d 'stop the job after DURATION'
    complete -c $cmd $cond -l restart -x -a 'always never unexpected' -d 'restart policy'
    complete -c $cmd $cond -l exitcodes -x -d 'expected exit codes, e.g. 0,2'
    complete -c $cmd $cond -l startretries -x -d 'retries of a failed start'
    complete -c $cmd $cond -l starttime -x -d 'time up before a start counts'
    complete -c $cmd $cond -l stopsignal -x -a "$__batman_signals" -d 'signal of the stop sequence'
    complete -c $cmd $cond -l stoptime -x -d 'wait before SIGKILL'
    complete -c $cmd $cond -l env -x -d 'K=V for the job'
    complete -c $cmd $cond -l cwd -x -a '(__fish_complete_directories)' -d 'working directory'
    complete -c $cmd $cond -l worktree -d 'run in a fresh git worktree of HEAD'
    complete -c $cmd $cond -l keep-worktree -d 'keep the worktree after a success too'
    complete -c $cmd $cond -s t -l tty -d 'give the job a pseudo-terminal'
    complete -c $cmd $cond -s d -l detach -d 'run in the background'
    complete -c $cmd $cond -l keep-tmp -d 'keep tmp/<run-id> afterwards'
    complete -c $cmd $cond -l monitor -d 'serve a status page'
    complete -c $cmd $cond -l no-monitor -d 'no status page'
    complete -c $cmd $cond -s q -l quiet -d 'only errors from batman'
end
complete -c batman-parallel -c batman-multi -c batman-isolated -s h -l help -d 'show the options'
complete -c batman-parallel -c batman-multi -c batman-isolated -s V -l version -d 'print the version'
complete -c batman-isolated -l project -x -a '(__batman_projects)' -d 'project name'
complete -c batman -n '__fish_seen_subcommand_from isolated' -l project -x -a '(__batman_projects)' -d 'project name'
complete -c batman-parallel -c batman-multi -n 'test (count (commandline -opc)) -eq 1' -x -a '(__batman_projects)'
complete -c batman -n '__fish_seen_subcommand_from parallel multi; and test (__batman_positionals) -eq 0' -x -a '(__batman_projects)'

# ps, logs, stop, clean, doctor, profiles
complete -c batman -n '__fish_seen_subcommand_from ps' -s a -l all -d 'include finished runs'
complete -c batman -n '__fish_seen_subcommand_from ps' -s p -l project -x -a '(__batman_projects)' -d 'only this project'
complete -c batman -n '__fish_seen_subcommand_from ps' -l format -x -a 'table json' -d 'output format'
complete -c batman -n '__fish_seen_subcommand_from ps' -l json -d 'same as --format json'
complete -c batman -n '__fish_seen_subcommand_from ps' -s w -l wide -d 'every column'
complete -c batman -n '__fish_seen_subcommand_from ps' -s q -l quiet -d 'run-ids only'
complete -c batman -n '__fish_seen_subcommand_from logs' -s f -l follow -d 'follow until the run ends'
complete -c batman -n '__fish_seen_subcommand_from logs' -s n -l lines -x -d 'only the last N lines'
complete -c batman -n '__fish_seen_subcommand_from clean profiles doctor' -l json -d 'print JSON'
complete -c batman -n '__fish_seen_subcommand_from logs stop clean; and test (__batman_positionals) -eq 0' -x -a '(__batman_projects)'
complete -c batman -n '__fish_seen_subcommand_from logs stop; and test (__batman_positionals) -eq 1' -x -a '(__batman_runs)'
complete -c batman -n '__fish_seen_subcommand_from stop' -l all -d 'every live run of the project'
complete -c batman -n '__fish_seen_subcommand_from stop' -l signal -x -a "$__batman_signals" -d 'signal to send first'
complete -c batman -n '__fish_seen_subcommand_from stop' -l grace -x -d 'wait before SIGKILL'
complete -c batman -n '__fish_seen_subcommand_from clean' -l older-than -x -d 'only runs older than DURATION'
complete -c batman -n '__fish_seen_subcommand_from clean' -s n -l dry-run -d 'print what would be removed'
complete -c batman -n '__fish_seen_subcommand_from clean' -l all -d 'every finished run of every project'
complete -c batman -n '__fish_seen_subcommand_from profiles; and test (__batman_positionals) -eq 0' -x -a 'list show'
complete -c batman -n '__fish_seen_subcommand_from show' -x -a '(__batman_profiles)'

# supervise / taskmaster
complete -c taskmaster -s d -l daemon -d 'detach, serve the control socket'
complete -c taskmaster -l pidfile -r -d 'where --daemon writes its pid'
complete -c taskmaster -s h -l help -d 'show the options'
complete -c taskmaster -s V -l version -d 'print the version'
complete -c batman -n '__fish_seen_subcommand_from supervise' -s d -l daemon -d 'detach, serve the control socket'
complete -c batman -n '__fish_seen_subcommand_from supervise' -l pidfile -r -d 'where --daemon writes its pid'
complete -c batman -n '__fish_seen_subcommand_from supervise batch' -k -a '(__fish_complete_suffix .yaml)'

# ctl
set -l __batman_ctl_commands status start stop restart reload quit tail pid help version
complete -c batman -n "__fish_seen_subcommand_from ctl; and not __fish_seen_subcommand_from $__batman_ctl_commands" -a "$__batman_ctl_commands"
complete -c batman -n "__fish_seen_subcommand_from ctl; and not __fish_seen_subcommand_from $__batman_ctl_commands" -l socket -r -d 'control socket'
complete -c batman -n "__fish_seen_subcommand_from ctl; and not __fish_seen_subcommand_from $__batman_ctl_commands" -l config -r -d 'supervisor config'
complete -c batman -n '__fish_seen_subcommand_from ctl; and __fish_seen_subcommand_from status start stop restart pid tail' -x -a '(__batman_ctl_names)'
complete -c batman -n '__fish_seen_subcommand_from ctl; and __fish_seen_subcommand_from start stop restart pid' -x -a all
complete -c batman -n '__fish_seen_subcommand_from ctl; and __fish_seen_subcommand_from status' -l json -d 'JSON'

# batch
complete -c batman -n '__fish_seen_subcommand_from batch' -s j -l max-concurrency -x -d 'tasks at once'
complete -c batman -n '__fish_seen_subcommand_from batch' -l rate-limit -x -d 'starts per second'
complete -c batman -n '__fish_seen_subcommand_from batch' -l timeout -x -d 'per-attempt timeout'
complete -c batman -n '__fish_seen_subcommand_from batch' -l retries -x -d 'retries after a failed attempt'
complete -c batman -n '__fish_seen_subcommand_from batch' -l halt -x -a 'never soon,fail=1 now,fail=1' -d 'when to stop'
complete -c batman -n '__fish_seen_subcommand_from batch' -l report -r -d 'JSON report'
complete -c batman -n '__fish_seen_subcommand_from batch' -l junit -r -d 'JUnit XML'
complete -c batman -n '__fish_seen_subcommand_from batch' -l joblog -r -d 'GNU parallel joblog'
complete -c batman -n '__fish_seen_subcommand_from batch' -l isolation -x -a "$__batman_tiers" -d 'isolation tier'
complete -c batman -n '__fish_seen_subcommand_from batch' -l profile -x -a '(__batman_profiles)' -d 'isolation profile'
complete -c batman -n '__fish_seen_subcommand_from batch' -l output -x -a 'grouped prefixed none' -d 'how output is shown'
complete -c batman -n '__fish_seen_subcommand_from batch' -l tail -x -d 'lines of failed logs'
complete -c batman -n '__fish_seen_subcommand_from batch' -l resume -d 'only unfinished tasks'
complete -c batman -n '__fish_seen_subcommand_from batch' -l resume-failed -d 'and the failed ones'
complete -c batman -n '__fish_seen_subcommand_from batch' -l no-deps -d 'only the named tasks'
complete -c batman -n '__fish_seen_subcommand_from batch' -s q -l quiet -d 'only errors'
complete -c batman -n '__fish_seen_subcommand_from help' -x -a "$__batman_commands"
complete -c batman -n '__fish_seen_subcommand_from dashboard' -l port -x -d 'TCP port (default 0: any free one)'
complete -c batman -n '__fish_seen_subcommand_from dashboard' -l bind -x -d 'address to listen on'
complete -c batman -n '__fish_seen_subcommand_from dashboard' -l token -d 'require an access token'
complete -c batman -n '__fish_seen_subcommand_from dashboard' -l open -d 'open the page in a browser'
complete -c batman -n '__fish_seen_subcommand_from dashboard' -s d -l detach -d 'serve in the background'
complete -c batman -n '__fish_seen_subcommand_from dashboard' -l url -d "print the running dashboard's URL"
complete -c batman -n '__fish_seen_subcommand_from dashboard' -l stop -d 'stop the running dashboard'
complete -c batman -n '__fish_seen_subcommand_from batch' -l executor -x -a 'local slurm' -d 'where tasks run'
complete -c batman -n '__fish_seen_subcommand_from batch' -l partition -x -d 'slurm partition'
complete -c batman -n '__fish_seen_subcommand_from batch' -l account -x -d 'slurm account'
complete -c batman -n '__fish_seen_subcommand_from batch' -l qos -x -d 'slurm QOS'
complete -c batman -n '__fish_seen_subcommand_from batch' -l slurm-opt -x -d 'another sbatch option NAME=VALUE'
complete -c batman -n '__fish_seen_subcommand_from supervise' -l format -x -a 'auto yaml supervisord' -d 'config format'
complete -c batman -n '__fish_seen_subcommand_from supervise' -l rpc-socket -r -d 'socket for supervisorctl'
