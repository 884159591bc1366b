# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_dmg_manager_global_optspecs
	string join \n c/config= check-config a d x s b h/help V/version
end

function __fish_dmg_manager_needs_command
	# Figure out if the current invocation already has a command.
	set -l cmd (commandline -opc)
	set -e cmd[1]
	argparse -s (__fish_dmg_manager_global_optspecs) -- $cmd 2>/dev/null
	or return
	if set -q argv[1]
		# Also print the command, so this can be used to figure out what it is.
		echo $argv[1]
		return 1
	end
	return 0
end

function __fish_dmg_manager_using_subcommand
	set -l cmd (__fish_dmg_manager_needs_command)
	test -z "$cmd"
	and return 1
	contains -- $cmd[1] $argv
end

complete -c dmg_manager -n "__fish_dmg_manager_needs_command" -s c -l config -d 'Configuration file; the commands find the manager through it too' -r -F
complete -c dmg_manager -n "__fish_dmg_manager_needs_command" -l check-config -d 'Validate the configuration, print a summary and exit'
complete -c dmg_manager -n "__fish_dmg_manager_needs_command" -s a -d 'Start and supervise Domogik\'s admin (as Domogik\'s init script asks: `-a -d -x -s -b`)'
complete -c dmg_manager -n "__fish_dmg_manager_needs_command" -s d -d 'Start and supervise Domogik\'s dbmgr (first of the core components)'
complete -c dmg_manager -n "__fish_dmg_manager_needs_command" -s x -d 'Start and supervise Domogik\'s xPL gateway, xplgw'
complete -c dmg_manager -n "__fish_dmg_manager_needs_command" -s s -d 'Start and supervise Domogik\'s scenario manager'
complete -c dmg_manager -n "__fish_dmg_manager_needs_command" -s b -d 'Start and supervise Domogik\'s butler'
complete -c dmg_manager -n "__fish_dmg_manager_needs_command" -s h -l help -d 'Print help'
complete -c dmg_manager -n "__fish_dmg_manager_needs_command" -s V -l version -d 'Print version'
complete -c dmg_manager -n "__fish_dmg_manager_needs_command" -f -a "run" -d 'Run the manager in the foreground (the default, and what the service runs)'
complete -c dmg_manager -n "__fish_dmg_manager_needs_command" -f -a "clients" -d 'Print the running manager\'s clients: id, type, plugin, host, status, configured, last seen, pid'
complete -c dmg_manager -n "__fish_dmg_manager_needs_command" -f -a "watch" -d 'Print one line per change of the clients (status, added, removed, reloaded) until Ctrl-C'
complete -c dmg_manager -n "__fish_dmg_manager_needs_command" -f -a "status" -d 'Announce, as a plugin would, that plugin NAME of this host is EVENT'
complete -c dmg_manager -n "__fish_dmg_manager_needs_command" -f -a "start" -d 'Ask the running manager to start plugin NAME of this host'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand run" -s c -l config -d 'Configuration file; the commands find the manager through it too' -r -F
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand run" -l check-config -d 'Validate the configuration, print a summary and exit'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand run" -s a -d 'Start and supervise Domogik\'s admin (as Domogik\'s init script asks: `-a -d -x -s -b`)'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand run" -s d -d 'Start and supervise Domogik\'s dbmgr (first of the core components)'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand run" -s x -d 'Start and supervise Domogik\'s xPL gateway, xplgw'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand run" -s s -d 'Start and supervise Domogik\'s scenario manager'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand run" -s b -d 'Start and supervise Domogik\'s butler'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand run" -s h -l help -d 'Print help'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand clients" -l history -d 'Print the status history of plugin NAME instead, newest first' -r
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand clients" -l host -d 'Show only the clients of host NAME (every manager on a bus answers for every host)' -r
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand clients" -l timeout -d 'How long to wait for the manager, in seconds (fractions allowed)' -r
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand clients" -s c -l config -d 'Configuration file; the commands find the manager through it too' -r -F
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand clients" -l detail -d 'Add version, author and description (for an invalid package, what is wrong with it)'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand clients" -l json -d 'Print the manager\'s reply body unchanged'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand clients" -l utc -d 'With --history: times in UTC, not in this machine\'s time zone'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand clients" -s h -l help -d 'Print help'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand watch" -l timeout -d 'How long to wait for the manager, in seconds (fractions allowed)' -r
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand watch" -s c -l config -d 'Configuration file; the commands find the manager through it too' -r -F
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand watch" -l utc -d 'Times in UTC, not in this machine\'s time zone'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand watch" -s h -l help -d 'Print help'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand status" -l comment -d 'A comment sent with the status' -r
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand status" -l timeout -d 'How long to wait for the manager, in seconds (fractions allowed)' -r
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand status" -s c -l config -d 'Configuration file; the commands find the manager through it too' -r -F
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand status" -s h -l help -d 'Print help'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand start" -l timeout -d 'How long to wait for the manager, in seconds (fractions allowed)' -r
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand start" -s c -l config -d 'Configuration file; the commands find the manager through it too' -r -F
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand start" -s h -l help -d 'Print help'

# The plugins installed: the plugin_NAME folders of the config's
# packages_dir (the -c/--config file on the line, else the default config).
function __fish_dmg_manager_plugins
    set -l words (commandline -opc)
    set -l config /etc/domogik/manager.cfg
    for i in (seq (count $words))
        switch $words[$i]
            case -c --config
                set -q words[(math $i + 1)]; and set config $words[(math $i + 1)]
            case '--config=*'
                set config (string replace -- '--config=' '' $words[$i])
        end
    end
    set -l dir (sed -n '/^[[:space:]]*\[manager\]/,/^[[:space:]]*\[/ s/^[[:space:]]*packages_dir[[:space:]]*=[[:space:]]*\([^;#]*\).*/\1/p' $config 2>/dev/null | tail -n 1 | string trim)
    test -n "$dir"; or set dir /var/lib/domogik/domogik_packages
    string match -q '/*' -- $dir; or set dir (dirname -- $config)/$dir
    for folder in $dir/plugin_*/
        string replace -r '.*/plugin_([^/]*)/$' '$1' -- $folder
    end
end

# How many positional words follow the command (the values of the options
# that take one are not).
function __fish_dmg_manager_positionals
    set -l words (commandline -opc)
    set -l n 0
    set -l skip 0
    set -l seen 0
    for word in $words[2..-1]
        if test $skip = 1
            set skip 0
            continue
        end
        switch $word
            case -c --config --comment --timeout --history
                set skip 1
            case '-*'
            case '*'
                if test $seen = 0
                    set seen 1
                else
                    set n (math $n + 1)
                end
        end
    end
    echo $n
end

complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand status; and test (__fish_dmg_manager_positionals) = 0" -f -a "(__fish_dmg_manager_plugins)" -d 'installed plugin'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand start; and test (__fish_dmg_manager_positionals) = 0" -f -a "(__fish_dmg_manager_plugins)" -d 'installed plugin'
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand clients" -l history -f -r -a "(__fish_dmg_manager_plugins)"
complete -c dmg_manager -n "__fish_dmg_manager_using_subcommand status; and test (__fish_dmg_manager_positionals) = 1" -f -a "unknown starting alive stop-request stopped dead invalid not-configured" -d 'status'
