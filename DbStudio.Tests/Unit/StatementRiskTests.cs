// The assistant's UX guard: which statements read, write, or destroy (typed confirmation), and how replies are cut into blocks.
using DbStudio.Core.Assistant;

namespace DbStudio.Tests.Unit;

public class StatementRiskTests
{
    [Theory]
    [InlineData("select * from posts where id = 1")]
    [InlineData("with recent as (select * from posts) select count(*) from recent")]
    [InlineData("table posts")]
    [InlineData("values (1), (2)")]
    [InlineData("explain select * from posts")]
    [InlineData("select 'drop table posts; delete from posts' as text -- drop table x")]
    [InlineData("select $$ truncate posts $$")]
    public void Reads(string sql) => Assert.Equal(RiskLevel.Read, StatementRisk.Classify(sql).Level);

    [Theory]
    [InlineData("create table posts (id serial primary key)")]
    [InlineData("insert into posts (title) values ('x')")]
    [InlineData("update posts set title = 'y' where id = 1")]
    [InlineData("delete from posts where id = 1")]
    [InlineData("select * into copy from posts")]
    [InlineData("select * from posts for update")]
    [InlineData("explain analyze delete from posts where id = 1")]
    [InlineData("alter table posts add column body text")]
    [InlineData("with gone as (delete from posts where id = 1 returning *) select * from gone")]
    [InlineData("select nextval('posts_id_seq')")]
    [InlineData("grant select on posts to public")]
    public void Writes(string sql) => Assert.Equal(RiskLevel.Write, StatementRisk.Classify(sql).Level);

    [Theory]
    [InlineData("drop table posts", "posts")]
    [InlineData("DROP TABLE IF EXISTS \"Blog Posts\" CASCADE", "Blog Posts")]
    [InlineData("truncate table posts", "posts")]
    [InlineData("alter table posts drop column body", "posts")]
    [InlineData("delete from posts", "posts")]
    [InlineData("update posts set title = 'x'", "posts")]
    [InlineData("update posts set title = (select name from authors where id = 1)", "posts")] // the WHERE is the sub-select's
    [InlineData("with x as (select 1) delete from posts", "posts")]
    [InlineData("select 1; drop view v", "v")] // the riskiest statement of the block decides
    public void Destructive(string sql, string confirm)
    {
        var risk = StatementRisk.Classify(sql);
        Assert.Equal(RiskLevel.Destructive, risk.Level);
        Assert.Equal(confirm, risk.ConfirmWord);
        Assert.False(string.IsNullOrEmpty(risk.Reason));
    }

    [Fact]
    public void A_reply_is_cut_into_text_and_blocks_in_order()
    {
        var parts = AssistantSession.Parse("Make it:\n<sql>create table t (id int)</sql>\nthen <SQL> </SQL> <access table=\"t\">{\"anon_select\": true}</access> done <sql>unclosed");
        Assert.Equal(["Make it:\n", null, "\nthen ", " ", null, " done <sql>unclosed"], parts.Select(p => p.Text));
        var blocks = parts.Where(p => p.Block is not null).Select(p => p.Block!).ToList();
        Assert.Equal([0, 1], blocks.Select(b => b.Index));
        Assert.Equal("create table t (id int)", blocks[0].Text);
        Assert.Equal(BlockKind.Access, blocks[1].Kind);
        Assert.Equal("t", blocks[1].Table);
        Assert.Equal("{\"anon_select\": true}", blocks[1].Text);
    }
}
